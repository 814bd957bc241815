package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/wire"
)

// A backup is JSON lines: a BackupHeader, then one HistoryEntry a line,
// conversation by conversation in SeqId order (unsequenced ones first).
// GET /v1/backup writes one; POST /v1/backup takes one and stores what
// checks out, so importing a file twice, or into a device that holds part
// of it, changes nothing the second time.

// BackupFormat is the header's Format.
const BackupFormat = "mqtter-backup/1"

// BackupHeader is the first line of a backup.
type BackupHeader struct {
	Format   string `json:"format"`
	User     string `json:"user"`
	Device   string `json:"device"`
	Exported int64  `json:"exported"` // unix ms
}

// ImportResult is the answer of POST /v1/backup.
type ImportResult struct {
	Read     int      `json:"read"`     // message lines in the file
	Imported int      `json:"imported"` // new to this device
	Known    int      `json:"known"`    // held already
	Refused  int      `json:"refused"`  // did not check out (see Errors)
	Errors   []string `json:"errors,omitempty"`
}

// importBatch is how many messages one import transaction stores.
const importBatch = 1000

// maxImportErrors is how many refusal reasons an import reports.
const maxImportErrors = 20

// maxBackupLine bounds one line of a backup file.
const maxBackupLine = 2 * wire.DefaultMaxBody

func (a *apiServer) exportBackup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	n := a.n
	if err := enc.Encode(BackupHeader{Format: BackupFormat, User: n.cfg.User, Device: n.self.String(),
		Exported: time.Now().UnixMilli()}); err != nil {
		return
	}
	err := n.db.Each(r.Context(), func(s localdb.Stored) error {
		return enc.Encode(HistoryEntry{Message: s.Message, Via: s.Via})
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		// The status line is gone: the client sees a short file without
		// the end marker and says so.
		n.log.Warn("backup export", "err", err)
		return
	}
	fmt.Fprintln(w, `{"end":true}`)
}

func (a *apiServer) importBackup(w http.ResponseWriter, r *http.Request) {
	res, err := a.n.importBackup(r.Context(), r.Body)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// importBackup stores the messages of a backup that check out: valid,
// signed with a signature that verifies (wire.VerifyBatch, a batch at a
// time), by a device that (as far as this node knows) belongs to their
// sender, in a conversation of this account.
// Unsigned messages cannot be verified and are refused; the server still
// has them for a sync.
func (n *Node) importBackup(ctx context.Context, r io.Reader) (ImportResult, error) {
	var res ImportResult
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxBackupLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return res, badRequest("backup: %v", err)
		}
		return res, badRequest("backup: empty")
	}
	var h BackupHeader
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Format != BackupFormat {
		return res, badRequest("backup: the first line is not a %s header", BackupFormat)
	}
	if h.User != n.cfg.User {
		return res, forbidden("backup: it is %s's history, this node is %s's", h.User, n.cfg.User)
	}
	var batch []wire.Message
	last := make(map[string]int64)
	var lines []int // the file line of each of batch
	refuse := func(line int, id string, err error) {
		res.Refused++
		if len(res.Errors) < maxImportErrors {
			res.Errors = append(res.Errors, fmt.Sprintf("line %d: %s: %v", line, id, err))
		}
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		ptrs := make([]*wire.Message, len(batch))
		for i := range batch {
			ptrs[i] = &batch[i]
		}
		good := make([]wire.Message, 0, len(batch))
		for i, err := range wire.VerifyBatch(ptrs) {
			if err != nil {
				refuse(lines[i], batch[i].MsgId, err)
				continue
			}
			good = append(good, batch[i])
		}
		added, err := n.db.AddMessages(context.WithoutCancel(ctx), good, localdb.ViaSync)
		if err != nil {
			return err
		}
		for i, ok := range added {
			if ok {
				res.Imported++
				n.received(good[i], localdb.ViaSync)
			} else {
				res.Known++
			}
			if s := good[i].SeqId; s > 0 {
				last[good[i].Feeds] = max(last[good[i].Feeds], s)
			}
		}
		batch, lines = batch[:0], lines[:0]
		return nil
	}
	ended := false
	line := 1
	for sc.Scan() {
		line++
		if ended {
			return res, badRequest("backup: line %d: data after the end marker", line)
		}
		var e struct {
			HistoryEntry
			End bool `json:"end"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return res, badRequest("backup: line %d: %v", line, err)
		}
		if e.End {
			ended = true
			continue
		}
		res.Read++
		m := e.Message
		if err := n.checkImported(&m); err != nil {
			refuse(line, m.MsgId, err)
			continue
		}
		batch, lines = append(batch, m), append(lines, line)
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return res, badRequest("backup: line %d: %v", line+1, err)
	}
	if err := flush(); err != nil {
		return res, err
	}
	for feeds, seq := range last {
		if _, err := n.db.Advance(ctx, feeds, seq); err != nil {
			return res, err
		}
	}
	if !ended {
		return res, badRequest("backup: the file ends without its end marker (cut short?); the %d messages before were imported", res.Imported)
	}
	n.log.Info("backup imported", "read", res.Read, "imported", res.Imported, "known", res.Known, "refused", res.Refused)
	return res, nil
}

// checkImported decides whether a message from a backup may be stored,
// but for its signature, which the import verifies a batch at a time.
func (n *Node) checkImported(m *wire.Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if !m.Signed() {
		return errors.New("unsigned: it cannot be verified (a sync brings it from the server)")
	}
	if owner, ok := n.book.account(m.Device); ok && owner != m.From {
		return fmt.Errorf("device %s belongs to %s, not %s", m.Device, owner, m.From)
	}
	f, err := wire.ParseFeeds(m.Feeds)
	if err != nil {
		return err
	}
	if !f.Has(n.cfg.User) && f.Kind == wire.FeedsDM {
		return fmt.Errorf("%s is not a conversation of %s", m.Feeds, n.cfg.User)
	}
	return nil
}
