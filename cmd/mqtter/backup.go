package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

const backupForm = "backup export FILE | backup import FILE"

// backup writes the node's history to a file, or stores a file's
// messages in it ("-" is stdout or stdin).
func (c *cli) backup(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, backupForm)
	}
	sub := args[0]
	pos, err := c.parse(c.flags("backup "+sub), args[1:], 1, 1, backupForm)
	if err != nil {
		return err
	}
	switch sub {
	case "export":
		return c.backupExport(pos[0])
	case "import":
		return c.backupImport(pos[0])
	}
	return fmt.Errorf("%w: unknown backup command %q; %s", errUsage, sub, backupForm)
}

func (c *cli) backupExport(file string) (err error) {
	cl, err := c.client()
	if err != nil {
		return err
	}
	w, commit, err := createAtomic(file, c.stdout)
	if err != nil {
		return err
	}
	p := newProgress(c.stderr, "exporting")
	n, err := cl.Export(c.ctx, w, func(n int) { p.set(fmt.Sprintf("%d messages", n)) })
	p.stop()
	if err = commit(err); err != nil {
		return fmt.Errorf("backup export: %w", err)
	}
	if file != "-" {
		fmt.Fprintf(c.stdout, "exported %d messages to %s\n", n, file)
	}
	return nil
}

func (c *cli) backupImport(file string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	var r io.Reader = os.Stdin
	var size int64
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("backup import: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		r = f
	}
	p := newProgress(c.stderr, "importing")
	cr := &countingReader{r: r}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				read := cr.n.Load()
				if size > 0 {
					p.set(fmt.Sprintf("%d%% (%d of %d bytes sent)", 100*read/size, read, size))
				} else {
					p.set(fmt.Sprintf("%d bytes sent", read))
				}
			}
		}
	}()
	res, err := cl.Import(c.ctx, cr)
	close(done)
	p.stop()
	if err != nil {
		return fmt.Errorf("backup import: %w", err)
	}
	fmt.Fprintf(c.stdout, "read %d messages: %d imported, %d held already, %d refused\n",
		res.Read, res.Imported, res.Known, res.Refused)
	for _, e := range res.Errors {
		fmt.Fprintf(c.stdout, "  refused: %s\n", e)
	}
	if res.Refused > len(res.Errors) {
		fmt.Fprintf(c.stdout, "  … and %d more refused\n", res.Refused-len(res.Errors))
	}
	return nil
}

// createAtomic opens a temporary file beside file ("-": stdout); commit
// renames it into place when err is nil and removes it otherwise, so a
// failed export never leaves a half file under the asked-for name.
func createAtomic(file string, stdout io.Writer) (io.Writer, func(error) error, error) {
	if file == "-" {
		return stdout, func(err error) error { return err }, nil
	}
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return nil, nil, fmt.Errorf("backup export: %w", err)
	}
	commit := func(err error) error {
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(f.Name(), 0o600)
		}
		if err == nil {
			err = os.Rename(f.Name(), file)
		}
		if err != nil {
			os.Remove(f.Name())
		}
		return err
	}
	return f, commit, nil
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// progress shows how long work is going on one terminal line, redrawn at
// most a few times a second; it prints nothing when w is not a terminal.
type progress struct {
	w     io.Writer
	label string
	tty   bool
	last  time.Time
	shown bool
}

func newProgress(w io.Writer, label string) *progress {
	p := &progress{w: w, label: label}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) set(s string) {
	if !p.tty || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.shown = time.Now(), true
	fmt.Fprintf(p.w, "\r\033[K%s: %s", p.label, s)
}

func (p *progress) stop() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
