// Package keyring seals small secrets (Twilio auth tokens) for storage with
// AES-256-GCM from the standard library. A Keyring holds one or more keys:
// the first seals, any opens, so keys can be rotated (add the new key first,
// re-seal, then drop the old one). Each sealed value names its key by a
// fingerprint and carries its own random nonce, and is bound to where it is
// stored (the additional data, e.g. the account sid and the slot), so a
// value copied to another row does not open there.
//
// A Keyring with no keys stores values in the clear, marked as such; it is
// only for deployments that chose that explicitly.
package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Format bytes: the first byte of every stored value.
const (
	formatPlain  byte = 0
	formatAESGCM byte = 1
)

const fingerprintLen = 4

// ErrNoKey is returned by Open for a sealed value when the Keyring has no
// key, and wraps the error for a value sealed by a key it does not hold.
var ErrNoKey = errors.New("no key to open this value: set ENCRYPTION_KEY to the key it was sealed with")

type key struct {
	fingerprint [fingerprintLen]byte
	aead        cipher.AEAD
}

// Keyring seals with its first key and opens with any.
type Keyring struct {
	keys []key
}

// Parse reads keys separated by commas, each 32 bytes given as 64 hex
// digits or as standard or URL-safe base64. The first seals. An empty
// string is a Keyring with no keys. The error never contains key material.
func Parse(s string) (*Keyring, error) {
	k := &Keyring{}
	if strings.TrimSpace(s) == "" {
		return k, nil
	}
	for i, part := range strings.Split(s, ",") {
		raw, err := decodeKey(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("key %d of %d: %w", i+1, strings.Count(s, ",")+1, err)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		sum := sha256.Sum256(raw)
		var fp [fingerprintLen]byte
		copy(fp[:], sum[:])
		for _, other := range k.keys {
			if other.fingerprint == fp {
				return nil, fmt.Errorf("key %d is given twice", i+1)
			}
		}
		k.keys = append(k.keys, key{fingerprint: fp, aead: aead})
	}
	return k, nil
}

func decodeKey(s string) ([]byte, error) {
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("want 32 bytes as 64 hex digits or base64 (e.g. openssl rand -base64 32)")
}

// Encrypts reports whether Seal encrypts: the Keyring has a key.
func (k *Keyring) Encrypts() bool { return len(k.keys) > 0 }

// Seal returns plaintext sealed for storage, bound to aad: with the first
// key and a fresh random nonce, or in the clear (marked so) when the
// Keyring has no key.
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	if len(k.keys) == 0 {
		return append([]byte{formatPlain}, plaintext...), nil
	}
	first := k.keys[0]
	out := make([]byte, 1+fingerprintLen+first.aead.NonceSize(), 1+fingerprintLen+first.aead.NonceSize()+len(plaintext)+first.aead.Overhead())
	out[0] = formatAESGCM
	copy(out[1:], first.fingerprint[:])
	nonce := out[1+fingerprintLen:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return first.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open returns the plaintext of a value Seal made with the same aad. It
// fails for a value sealed by a key the Keyring does not hold, or changed,
// or stored under other aad.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, errors.New("open: empty value")
	}
	switch sealed[0] {
	case formatPlain:
		return bytes.Clone(sealed[1:]), nil
	case formatAESGCM:
	default:
		return nil, fmt.Errorf("open: unknown format %d", sealed[0])
	}
	if len(k.keys) == 0 {
		return nil, ErrNoKey
	}
	if len(sealed) < 1+fingerprintLen {
		return nil, errors.New("open: value too short")
	}
	var fp [fingerprintLen]byte
	copy(fp[:], sealed[1:])
	for _, key := range k.keys {
		if key.fingerprint != fp {
			continue
		}
		rest := sealed[1+fingerprintLen:]
		if len(rest) < key.aead.NonceSize() {
			return nil, errors.New("open: value too short")
		}
		plain, err := key.aead.Open(nil, rest[:key.aead.NonceSize()], rest[key.aead.NonceSize():], aad)
		if err != nil {
			return nil, errors.New("open: the value does not authenticate under its key: it was changed or moved")
		}
		return plain, nil
	}
	return nil, fmt.Errorf("open: sealed by key %x, which ENCRYPTION_KEY does not hold: %w", fp, ErrNoKey)
}

// Plain reports whether sealed is stored in the clear.
func Plain(sealed []byte) bool { return len(sealed) > 0 && sealed[0] == formatPlain }

// SealedByFirst reports whether sealed is sealed by the Keyring's first
// key, so a re-seal would not change which key opens it.
func (k *Keyring) SealedByFirst(sealed []byte) bool {
	return len(k.keys) > 0 && len(sealed) > 1+fingerprintLen && sealed[0] == formatAESGCM &&
		bytes.Equal(sealed[1:1+fingerprintLen], k.keys[0].fingerprint[:])
}

// KeyOf returns the fingerprint (8 hex digits) of the key that sealed a
// value, "plaintext" for one stored in the clear, or "unknown" for one that
// is neither: what to tell an operator whose key does not open it.
func KeyOf(sealed []byte) string {
	switch {
	case Plain(sealed):
		return "plaintext"
	case len(sealed) > 1+fingerprintLen && sealed[0] == formatAESGCM:
		return hex.EncodeToString(sealed[1 : 1+fingerprintLen])
	}
	return "unknown"
}

// Fingerprints returns the fingerprints of the Keyring's keys, the sealing
// one first, as KeyOf names them; none without keys.
func (k *Keyring) Fingerprints() []string {
	out := make([]string, len(k.keys))
	for i, key := range k.keys {
		out[i] = hex.EncodeToString(key.fingerprint[:])
	}
	return out
}
