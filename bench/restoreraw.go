package bench

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/sqlitedb"
	mqsync "github.com/mqtter/mqtter/sync"
	"github.com/mqtter/mqtter/wire"
)

// RestoreRaw is how fast the same rows go into SQLite without a network,
// a server or signature checks.
type RestoreRaw struct {
	Rows        int
	AddMessages time.Duration // localdb.AddMessages, one call a page
	Bare        time.Duration // a prepared INSERT in one transaction a page
	Read        time.Duration // reading the pages from the server's store (not part of either)
}

// restoreRawInsert reads the history from the server's store a page at a time,
// in the order a restore pulls it, and stores every page twice: with
// localdb.AddMessages into a fresh node database, and with a bare INSERT
// loop of the same driver into a fresh file with localdb's schema and
// pragmas. Only the inserts are timed.
func restoreRawInsert(ctx context.Context, dataDir, dir string, h restoreHistory) (RestoreRaw, error) {
	var res RestoreRaw
	src, err := store.Open(ctx, filepath.Join(dataDir, "mqtter.db"), nil)
	if err != nil {
		return res, err
	}
	defer src.Close()
	ldb, err := localdb.Open(ctx, filepath.Join(dir, "raw-localdb.db"), nil)
	if err != nil {
		return res, err
	}
	defer ldb.Close()
	schema, err := localdb.Schema()
	if err != nil {
		return res, err
	}
	bareW, bareR, err := sqlitedb.Open(ctx, filepath.Join(dir, "raw-bare.db"), sqlitedb.Options{
		ReadConns: 1, Migrations: schema})
	if err != nil {
		return res, err
	}
	defer bareR.Close()
	defer bareW.Close()

	for _, feeds := range h.feeds {
		var after int64
		for {
			t0 := time.Now()
			page, err := src.History(ctx, feeds, after, mqsync.PageSize, 0)
			if err != nil {
				return res, err
			}
			res.Read += time.Since(t0)
			if len(page) == 0 {
				break
			}
			after = page[len(page)-1].SeqId

			t0 = time.Now()
			added, err := ldb.AddMessages(ctx, page, localdb.ViaSync)
			if err != nil {
				return res, err
			}
			res.AddMessages += time.Since(t0)
			for i, ok := range added {
				if !ok {
					return res, fmt.Errorf("AddMessages: %s stored twice", page[i].MsgId)
				}
			}

			t0 = time.Now()
			if err := bareInsert(ctx, bareW, page); err != nil {
				return res, err
			}
			res.Bare += time.Since(t0)
			res.Rows += len(page)
		}
	}
	if res.Rows != h.total {
		return res, fmt.Errorf("read %d messages from the server's store, want %d", res.Rows, h.total)
	}
	return res, nil
}

func bareInsert(ctx context.Context, db *sql.DB, page []wire.Message) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO messages
		(msg_id, feeds, seq, msg_type, sender, payload, time_create, device, sig, via)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'sync')`)
	if err != nil {
		return err
	}
	defer st.Close()
	for i := range page {
		m := &page[i]
		if _, err := st.ExecContext(ctx, m.MsgId, m.Feeds, m.SeqId, m.MsgType, m.From, []byte(m.Payload),
			m.TimeCreate, m.Device, m.Sig); err != nil {
			return fmt.Errorf("bare insert %s: %w", m.MsgId, err)
		}
	}
	return tx.Commit()
}
