package main_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// The architecture rules of the design, as a test: every package says what
// it is for, and the layers do not reach into each other.
func TestArchitecture(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "github.com/mqtter/mqtter/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type pkg struct {
		ImportPath string
		Doc        string
		Deps       []string // every package it imports, directly or not
	}
	// Which of our packages each may not depend on, directly or through
	// another package.
	forbidden := map[string][]string{
		"wire":     {"server", "node", "p2p", "mqttlink", "sync", "localdb"},
		"mqttlink": {"server", "node", "p2p", "sync", "localdb"},
		"server":   {"node", "p2p", "mqttlink", "sync", "localdb"},
		"node":     {"server"},
		"p2p":      {"server", "node"},
		"localdb":  {"server", "node"},
		"thing":    {"server", "node", "p2p", "mqttlink", "sync", "localdb"},
		"demo":     {"server"},
	}
	const mod = "github.com/mqtter/mqtter/"
	dec := json.NewDecoder(strings.NewReader(string(out)))
	n := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		n++
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment", p.ImportPath)
		}
		rel := strings.TrimPrefix(p.ImportPath, mod)
		top := strings.SplitN(rel, "/", 2)[0]
		for _, imp := range p.Deps {
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			target := strings.SplitN(strings.TrimPrefix(imp, mod), "/", 2)[0]
			for _, f := range forbidden[top] {
				if target == f {
					t.Errorf("%s imports %s: %s must not depend on %s", p.ImportPath, imp, top, f)
				}
			}
		}
	}
	if n < 5 {
		t.Fatalf("go list found %d packages, want the whole module", n)
	}
}
