package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/mqtter/mqtter/wire"
)

// Files of a node's home directory besides the api files.
const (
	identityFile = "identity.key" // the device's Ed25519 key, libp2p-marshalled, mode 0600
	databaseFile = "node.db"
	lockFile     = "node.lock" // held (flock) while a node runs in the home
)

// ErrHomeInUse is returned by Run when another node already runs in the home.
var ErrHomeInUse = errors.New("another node is running in this home")

// loadIdentity reads the device key from home, creating it on first start.
func loadIdentity(home string) (crypto.PrivKey, error) {
	return wire.LoadIdentity(filepath.Join(home, identityFile))
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// lockHome takes the home's lock file, so two nodes never share a database
// and an identity. The lock goes with the process, also on kill -9.
func lockHome(home string) (release func(), err error) {
	f, err := os.OpenFile(filepath.Join(home, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock home: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrHomeInUse, home)
		}
		return nil, fmt.Errorf("lock home: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
