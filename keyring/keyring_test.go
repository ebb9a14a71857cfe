package keyring_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"inbox/keyring"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func TestSealOpensOnlyWithItsKeyAndPlace(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(t), newKey(t)
	ring, err := keyring.Parse(base64.StdEncoding.EncodeToString(k1))
	if err != nil {
		t.Fatal(err)
	}
	token := []byte("0123456789abcdef0123456789abcdef")
	aad := []byte("twilio_accounts/AC1/primary")
	sealed, err := ring.Seal(token, aad)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := ring.Seal(token, aad)
	if bytes.Contains(sealed, token) || bytes.Contains(sealed, []byte(hex.EncodeToString(token))) || bytes.Equal(sealed, again) {
		t.Fatal("the sealed value shows the token, or two seals are equal (a nonce was reused)")
	}
	if got, err := ring.Open(sealed, aad); err != nil || !bytes.Equal(got, token) {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := ring.Open(sealed, []byte("twilio_accounts/AC2/primary")); err == nil {
		t.Fatal("a value moved to another account opened")
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	if _, err := ring.Open(flipped, aad); err == nil {
		t.Fatal("a changed value opened")
	}
	other, _ := keyring.Parse(hex.EncodeToString(k2))
	if _, err := other.Open(sealed, aad); !errors.Is(err, keyring.ErrNoKey) {
		t.Fatalf("the wrong key: %v, want ErrNoKey", err)
	}
	none, _ := keyring.Parse("")
	if _, err := none.Open(sealed, aad); !errors.Is(err, keyring.ErrNoKey) {
		t.Fatalf("no key: %v, want ErrNoKey", err)
	}

	// Rotation: a new key first, the old one after; old values still open,
	// new ones are sealed by the new key.
	rotated, err := keyring.Parse(hex.EncodeToString(k2) + ", " + base64.RawURLEncoding.EncodeToString(k1))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(sealed, aad); err != nil || !bytes.Equal(got, token) || rotated.SealedByFirst(sealed) {
		t.Fatalf("old value under the rotated ring: %q, %v, sealed by first %v", got, err, rotated.SealedByFirst(sealed))
	}
	resealed, _ := rotated.Seal(token, aad)
	if !rotated.SealedByFirst(resealed) {
		t.Fatal("a new seal is not by the first key")
	}
	if _, err := ring.Open(resealed, aad); err == nil {
		t.Fatal("the old ring opened a value sealed by the new key")
	}
}

func TestPlaintextIsMarked(t *testing.T) {
	t.Parallel()
	none, _ := keyring.Parse("  ")
	if none.Encrypts() {
		t.Fatal("an empty ring encrypts")
	}
	sealed, _ := none.Seal([]byte("tok"), nil)
	if !keyring.Plain(sealed) {
		t.Fatal("not marked plain")
	}
	if got, err := none.Open(sealed, nil); err != nil || string(got) != "tok" {
		t.Fatalf("open = %q, %v", got, err)
	}
}

func TestParseRefusesBadKeysWithoutShowingThem(t *testing.T) {
	t.Parallel()
	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	k := hex.EncodeToString(newKey(t))
	for _, s := range []string{short, "not a key at all", k + "," + k, k + ",", strings.Repeat("z", 64)} {
		_, err := keyring.Parse(s)
		if err == nil {
			t.Fatalf("%q accepted", s)
		}
		if strings.Contains(err.Error(), short) || strings.Contains(err.Error(), k) {
			t.Fatalf("the error shows the key: %v", err)
		}
	}
}
