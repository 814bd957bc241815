package bench

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/mqttlink"
	mqsync "github.com/mqtter/mqtter/sync"
)

// RestoreNode is one restore by a `mqtter node` process.
type RestoreNode struct {
	Took      time.Duration // from the process's start until it logged "history pulled"
	HWM, RSS  int64         // peak and final resident memory of the node, bytes
	NodeCPU   time.Duration // CPU time the node used, all of it
	ServerCPU time.Duration // CPU time the server used meanwhile
	Fetched   int64         // as the node's last progress line said
}

var fetchedField = regexp.MustCompile(`\bfetched=(\d+)`)

// restoreWithNode starts a node with an empty home as a new device of the
// restorer and waits for the end of its history pull, which it starts on
// connecting; then it stops the node and checks its database.
func restoreWithNode(ctx context.Context, bin, dir string, server *process, serverURL string, h restoreHistory, timeout time.Duration) (RestoreNode, error) {
	var res RestoreNode
	home := filepath.Join(dir, "node-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return res, err
	}
	srvStart := server.cpuTime()
	start := time.Now()
	p, err := startProcess("node", dir, []string{"MQTTER_PASSWORD=" + benchPassword}, bin,
		"node", "--home", home, "--server", serverURL, "--user", restoreAccount,
		"--p2p", "/ip4/127.0.0.1/tcp/0", "--no-mdns")
	if err != nil {
		return res, err
	}
	defer p.stop()
	line, err := waitLogLine(ctx, p, timeout, []byte(`msg="history pulled"`), []byte(`msg="history pull stopped"`))
	res.Took = time.Since(start)
	if err != nil {
		return res, err
	}
	if res.RSS, res.HWM, err = readMemory(p.cmd.Process.Pid); err != nil {
		return res, err
	}
	res.NodeCPU = p.cpuTime()
	res.ServerCPU = server.cpuTime() - srvStart
	if m := fetchedField.FindSubmatch(line); m != nil {
		res.Fetched, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if bytes.Contains(line, []byte("history pull stopped")) {
		return res, fmt.Errorf("the node's pull failed: %s", line)
	}
	p.stop()
	return res, checkRestored(ctx, filepath.Join(home, "node.db"), h)
}

// waitLogLine polls the process's log until a line containing one of
// marks appears and returns that line.
func waitLogLine(ctx context.Context, p *process, timeout time.Duration, marks ...[]byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	f, err := os.Open(p.log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf []byte
	chunk := make([]byte, 64<<10)
	for {
		for {
			n, _ := f.Read(chunk)
			if n == 0 {
				break
			}
			buf = append(buf, chunk[:n]...)
		}
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			line := buf[:i]
			for _, m := range marks {
				if bytes.Contains(line, m) {
					return line, nil
				}
			}
			buf = buf[i+1:]
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited (%v)%s", p.name, p.err, p.tail())
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the restore: %w%s", ctx.Err(), p.tail())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// checkRestored opens the stopped node's database and checks that every
// conversation is there once and whole: as many rows and distinct MsgIds
// as the server holds, SeqIds 1 to that count, the cursor at the end and
// nothing refused.
func checkRestored(ctx context.Context, path string, h restoreHistory) error {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var refused int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM refused`).Scan(&refused); err != nil {
		return fmt.Errorf("check the node's database: %w", err)
	}
	if refused > 0 {
		return fmt.Errorf("the node refused %d messages", refused)
	}
	for _, feeds := range h.feeds {
		want := h.counts[feeds]
		var rows, ids, minSeq, maxSeq, cursor int64
		err := db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT msg_id), coalesce(min(seq), 0), coalesce(max(seq), 0),
			coalesce((SELECT seq FROM cursors WHERE feeds = ?1), 0) FROM messages WHERE feeds = ?1`, feeds).
			Scan(&rows, &ids, &minSeq, &maxSeq, &cursor)
		if err != nil {
			return fmt.Errorf("check the node's database: %w", err)
		}
		if rows != want || ids != want || minSeq != 1 || maxSeq != want || cursor != want {
			return fmt.Errorf("%s restored: %d rows, %d MsgIds, SeqIds %d to %d, cursor %d; want %d of each, SeqIds 1 to %d",
				feeds, rows, ids, minSeq, maxSeq, cursor, want, want)
		}
	}
	return nil
}

// restoreInProcess is the same restore with the node's parts wired in
// this process (a fresh localdb, a paho link as a new device of the
// restorer, a Syncer with the default check), so that it can be
// profiled; the profile, when asked for, covers the pull alone.
func restoreInProcess(ctx context.Context, dir, mqttURL, profile string, h restoreHistory) (time.Duration, error) {
	db, err := localdb.Open(ctx, filepath.Join(dir, "inprocess.db"), nil)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	_, id, err := newDeviceKey()
	if err != nil {
		return 0, err
	}
	link := mqttlink.Start(mqttlink.Config{Server: mqttURL, User: restoreAccount, Password: benchPassword,
		ClientID: id.String(), CallTimeout: time.Minute})
	defer link.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := link.Wait(wctx); err != nil {
		return 0, err
	}
	s, err := mqsync.New(mqsync.Config{DB: db, Server: link, Device: id.String(), Interval: time.Hour})
	if err != nil {
		return 0, err
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	res, err := s.Run(ctx, true)
	took := time.Since(start)
	if err != nil {
		return took, err
	}
	if res.Pulled != h.total {
		return took, fmt.Errorf("in-process restore pulled %d messages, want %d", res.Pulled, h.total)
	}
	return took, nil
}
