package launcher

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/gorun-hpc/gorun/runtime/auth"
)

const (
	// SecretSize is the length in bytes of a secret made by [WriteSecret].
	SecretSize = 32
	// minSecretSize is the shortest secret [ReadSecret] accepts.
	minSecretSize = 16
	// maxSecretFile bounds how much of a secret file is read.
	maxSecretFile = 4096
)

// DefaultSecretFile returns ~/.gorun/secret, the secret file the daemon and
// the launcher use when none is given.
func DefaultSecretFile() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".gorun", "secret")
	}
	return filepath.Join(home, ".gorun", "secret")
}

// WriteSecret creates path holding a new random secret of [SecretSize]
// bytes, hex encoded, with mode 0600 (its directory is created with mode
// 0700 if missing). It refuses to replace an existing file, since that
// would lock out every daemon started with the old secret.
func WriteSecret(path string) error {
	key, err := auth.NewKey(SecretSize)
	if err != nil {
		return fmt.Errorf("launcher: new secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("launcher: secret file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return usageErrorf(err, "secret file %s already exists; remove it first to make a new secret (every daemon and launcher must then use the new one)", path)
	}
	if err != nil {
		return fmt.Errorf("launcher: secret file: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path) // a partial secret is worse than none
		return fmt.Errorf("launcher: write secret file %s: %w", path, err)
	}
	return nil
}

// ReadSecret reads a secret file written by [WriteSecret] (any hex string
// of at least 16 bytes works). It refuses a missing file, a file that is
// not a regular file, one that group or others may read or write, and one
// owned by another user: a secret others can read protects nothing. Every
// error wraps [ErrUsage].
func ReadSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, usageErrorf(err, "secret file %s does not exist; make one with \"gorun secret --out %s\" and copy it to every host (mode 0600)", path, path)
	}
	if err != nil {
		return nil, usageErrorf(err, "secret file %s: %v", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, usageErrorf(err, "secret file %s: %v", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, usageErrorf(nil, "secret file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, usageErrorf(nil, "secret file %s is accessible by group or others (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return nil, usageErrorf(nil, "secret file %s belongs to user id %d, not to this user (%d)", path, st.Uid, os.Getuid())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, usageErrorf(err, "secret file %s: %v", path, err)
	}
	if len(b) > maxSecretFile {
		return nil, usageErrorf(nil, "secret file %s is too long for a secret", path)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, usageErrorf(err, "secret file %s does not hold a hex secret (make one with \"gorun secret\")", path)
	}
	if len(key) < minSecretSize {
		return nil, usageErrorf(nil, "secret file %s holds only %d bytes; want at least %d", path, len(key), minSecretSize)
	}
	return key, nil
}
