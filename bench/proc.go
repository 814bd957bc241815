package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A process is a broker running as a child process, with its output in a
// log file so a failure can show what the broker said.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done
}

// startProcess starts bin with args, output to dir/<name>.log.
func startProcess(name, dir string, env []string, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// waitListening waits until addr accepts TCP connections, the process exits,
// or ctx ends.
func (p *process) waitListening(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before listening on %s (%v)%s", p.name, addr, p.err, p.tail())
		case <-ctx.Done():
			return fmt.Errorf("%s not listening on %s: %w%s", p.name, addr, ctx.Err(), p.tail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop asks the process to terminate and kills it if it has not after a few
// seconds. It is safe to call more than once.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// shutdown stops the process and returns, if it had exited before it was
// asked to, a line saying so with the end of its log.
func (p *process) shutdown() string {
	select {
	case <-p.done:
		return fmt.Sprintf("%s exited on its own during the run (%v)%s", p.name, p.err, p.tail())
	default:
		p.stop()
		return ""
	}
}

// rss returns the process's resident set size in bytes, from /proc.
func (p *process) rss() (int64, error) {
	return readRSS(p.cmd.Process.Pid)
}

// tail returns the last lines of the process's log, for error messages.
func (p *process) tail() string {
	data, err := os.ReadFile(p.log)
	if err != nil || len(data) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	lines = lines[max(0, len(lines)-15):]
	return "\n  " + p.name + " log:\n    " + strings.Join(lines, "\n    ")
}

// cpuTime returns the CPU time (user + system, all threads) the process
// has used so far, or 0 when it cannot be read.
func (p *process) cpuTime() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	d, _ := parseStatCPU(string(data))
	return d
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: 100 per second on
// every Linux architecture Go supports.
const userHZ = 100

// parseStatCPU returns utime+stime from the text of a /proc/<pid>/stat file.
// The command name in parentheses may contain spaces, so fields are counted
// from the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no ')' in stat")
	}
	fields := strings.Fields(stat[i+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, errors.New("short stat")
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat cpu field %q: %w", f, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// loadAverage returns the machine's 1-minute load average, or "?": other
// work on the machine moves every figure.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if fields := strings.Fields(string(data)); err == nil && len(fields) > 0 {
		return fields[0]
	}
	return "?"
}

// readRSS reads VmRSS of pid from /proc/<pid>/status.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmRSS(f)
}

// parseVmRSS finds the "VmRSS:  1234 kB" line of a /proc status file and
// returns it in bytes.
func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("odd VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("odd VmRSS line %q: %w", sc.Text(), err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmRSS line")
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago: listen on port 0, note the port, close.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
