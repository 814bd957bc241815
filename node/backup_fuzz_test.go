package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// FuzzImportBackup feeds arbitrary files to the backup import. It must
// never panic, must either answer counts that add up or a user error, and
// must store only messages whose signature verifies; importing the same
// file again must store nothing new.
func FuzzImportBackup(f *testing.F) {
	aliceKey, alice := fixedKey(f, 1)
	_, bob := fixedKey(f, 2)
	header := func(user string) string {
		b, _ := json.Marshal(BackupHeader{Format: BackupFormat, User: user, Device: bob.String(), Exported: 1})
		return string(b)
	}
	line := func(seq int64, text string) string {
		m := wire.Message{MsgId: fmt.Sprintf("01JD%022d", seq), Feeds: wire.DM("alice", "bob"), SeqId: seq,
			MsgType: wire.MsgTypeText, From: "alice", Payload: json.RawMessage(fmt.Sprintf(`{"text":%q}`, text)),
			TimeCreate: time.UnixMilli(1_700_000_000_000).UnixMilli()}
		if err := m.Sign(aliceKey); err != nil {
			f.Fatal(err)
		}
		b, _ := json.Marshal(HistoryEntry{Message: m, Via: "p2p"})
		return string(b)
	}
	end := `{"end":true}`
	good := header("bob") + "\n" + line(1, "hi") + "\n" + line(2, "there") + "\n" + end + "\n"
	f.Add([]byte(good))
	f.Add([]byte(header("alice") + "\n" + end + "\n"))
	f.Add([]byte(header("bob") + "\n" + line(1, "hi")))
	f.Add([]byte(header("bob") + "\n" + `{"MsgId":"x","Feeds":"dm:alice:bob","Sig":"AAAA"}` + "\n" + end))
	f.Add([]byte(header("bob") + "\n" + end + "\n" + line(3, "after the end")))
	f.Add([]byte("not json\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, file []byte) {
		n := newReceiveNode(t, bob, alice)
		ctx := context.Background()
		res, err := n.importBackup(ctx, bytes.NewReader(file))
		var ue *userError
		if err != nil && !errors.As(err, &ue) {
			t.Fatalf("import failed with a non-user error: %v", err)
		}
		if res.Imported+res.Known+res.Refused > res.Read || res.Imported < 0 {
			t.Fatalf("counts do not add up: %+v", res)
		}
		stored, herr := n.db.History(ctx, wire.DM("alice", "bob"), 0)
		if herr != nil {
			t.Fatal(herr)
		}
		for _, s := range stored {
			if verr := s.Message.Verify(); verr != nil {
				t.Fatalf("stored %s whose signature does not verify: %v", s.MsgId, verr)
			}
		}
		again, aerr := n.importBackup(ctx, bytes.NewReader(file))
		if again.Imported != 0 || (aerr == nil) != (err == nil) {
			t.Fatalf("second import = %+v, %v after %+v, %v; want nothing new and the same outcome", again, aerr, res, err)
		}
	})
}
