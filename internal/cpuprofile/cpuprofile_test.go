package cpuprofile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStart(t *testing.T) {
	stop, err := Start("")
	if err != nil {
		t.Fatal(err)
	}
	stop() // no file: nothing to stop

	file := filepath.Join(t.TempDir(), "cpu.pprof")
	if stop, err = Start(file); err != nil {
		t.Fatal(err)
	}
	stop()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("the profile (%d bytes) is not gzipped", len(b))
	}
	if _, err := Start(filepath.Join(t.TempDir(), "no", "such", "dir", "cpu.pprof")); err == nil {
		t.Error("a profile in a missing directory started")
	}
}
