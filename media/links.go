package media

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"inbox/message"
	"inbox/twilioapi"
)

// PathPrefix is where the public listener serves media: PathPrefix + id,
// with the link's expiry and signature in its query.
const PathPrefix = "/media/"

// DefaultLinkLifetime is how long a download link works: a forward is
// built again at each attempt, so a link is at most this old when an app
// is handed it, however late the attempt.
const DefaultLinkLifetime = 7 * 24 * time.Hour

// LinkStore is what links need of the store.
type LinkStore interface {
	MediaLinkKey(ctx context.Context) ([]byte, error)
	MediaOfSIDs(ctx context.Context, sids []string) (map[string]map[int16]int64, error)
}

// Links makes and checks download links: PUBLIC_BASE_URL + PathPrefix + id
// + ?expires=<unix seconds>&sig=<HMAC-SHA256 over the medium and the
// expiry, under the database's media_link_key>. Every replica signs with
// the same key; the key is read once it is first needed, so a database
// down at start delays nothing.
type Links struct {
	store    LinkStore
	base     string
	lifetime time.Duration
	now      func() time.Time

	// fetchable, when set, says whether a medium's URL will be fetched
	// (twilioapi.Client.ParseMedium): one that will not gets no link.
	fetchable func(url, accountSID string) (twilioapi.Medium, error)

	mu  sync.Mutex
	key []byte
}

// Fetchable makes Decorate give no link to a medium whose URL parse
// refuses (twilioapi.Client.ParseMedium): its job will refuse it.
func (l *Links) Fetchable(parse func(url, accountSID string) (twilioapi.Medium, error)) *Links {
	l.fetchable = parse
	return l
}

// NewLinks returns the links of media served under base (PUBLIC_BASE_URL),
// each working for lifetime (0: DefaultLinkLifetime).
func NewLinks(st LinkStore, base string, lifetime time.Duration) *Links {
	if lifetime <= 0 {
		lifetime = DefaultLinkLifetime
	}
	return &Links{store: st, base: base, lifetime: lifetime, now: time.Now}
}

func (l *Links) signingKey(ctx context.Context) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.key == nil {
		k, err := l.store.MediaLinkKey(ctx)
		if err != nil {
			return nil, err
		}
		l.key = k
	}
	return l.key, nil
}

func sign(key []byte, id, expires int64) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "inbox media link v1|%d|%d", id, expires)
	return m.Sum(nil)
}

// URL is the download link of the medium id, working from now for the
// links' lifetime.
func (l *Links) URL(ctx context.Context, id int64) (string, error) {
	key, err := l.signingKey(ctx)
	if err != nil {
		return "", err
	}
	expires := l.now().Add(l.lifetime).Unix()
	return l.base + PathPrefix + strconv.FormatInt(id, 10) + "?expires=" + strconv.FormatInt(expires, 10) +
		"&sig=" + base64.RawURLEncoding.EncodeToString(sign(key, id, expires)), nil
}

// valid reports whether sig signs the medium id until expires, not yet
// past. It compares in constant time, before anything is read of the
// medium, so a refusal says nothing of whether it exists.
func (l *Links) valid(ctx context.Context, id int64, expires, sig string) (bool, error) {
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil || l.now().Unix() > exp {
		return false, nil
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return false, nil
	}
	key, err := l.signingKey(ctx)
	if err != nil {
		return false, err
	}
	return hmac.Equal(got, sign(key, id, exp)), nil
}

// Decorate gives each medium of the payloads (of received messages, by
// sid) that is or will be kept its download link. A payload without media
// is left as it is, byte for byte.
func (l *Links) Decorate(ctx context.Context, payloads map[string][]byte) error {
	var sids []string
	for sid, b := range payloads {
		if bytes.Contains(b, []byte(`"url"`)) { // a medium's item; a body's quote would be escaped
			sids = append(sids, sid)
		}
	}
	if len(sids) == 0 {
		return nil
	}
	ids, err := l.store.MediaOfSIDs(ctx, sids)
	if err != nil {
		return err
	}
	for _, sid := range sids {
		if len(ids[sid]) == 0 {
			continue
		}
		var p message.Payload
		if err := json.Unmarshal(payloads[sid], &p); err != nil {
			return fmt.Errorf("add download links to %s's payload: %w", sid, err)
		}
		for i, md := range p.Message.Media {
			if l.fetchable != nil {
				if _, err := l.fetchable(md.URL, p.Message.AccountSID); err != nil {
					continue
				}
			}
			if id, ok := ids[sid][int16(i)]; ok {
				if p.Message.Media[i].DownloadURL, err = l.URL(ctx, id); err != nil {
					return err
				}
			}
		}
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("add download links to %s's payload: %w", sid, err)
		}
		payloads[sid] = b
	}
	return nil
}
