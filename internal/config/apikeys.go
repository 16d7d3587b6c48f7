package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/clip"
)

// minSecretLen is the shortest callback token or HMAC secret accepted.
const minSecretLen = 16

// A Standard Webhooks signing secret is whsec_ and the key in standard base64; the specification
// recommends keys of 24 to 64 bytes, and a shorter one is refused.
const (
	signingSecretPrefix = "whsec_"
	minSigningKeyBytes  = 24
)

// checkSigningSecret says what is wrong with a DOPPEL_CALLBACK_SIGNING_SECRETS entry ("does not
// ..."), never repeating any of it: the message goes to the log and the terminal.
func checkSigningSecret(secret string) error {
	encoded, ok := strings.CutPrefix(secret, signingSecretPrefix)
	if !ok {
		return errors.New("does not start with " + signingSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return errors.New("is not " + signingSecretPrefix + " followed by standard base64 (A-Z a-z 0-9 + /, = padding)")
	}
	if len(key) < minSigningKeyBytes {
		return fmt.Errorf("holds a key of %d bytes, too short", len(key))
	}
	return nil
}

var keyName = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

const apiKeysHelp = `DOPPEL_API_KEYS entries are name:scopes:sha256hex separated by ";", scopes joined by "+" ` +
	`from read, review and replay, e.g. analyst:read+review:<hex>; make a key with ` +
	"`openssl rand -hex 32` and its hash with `printf %s \"$KEY\" | sha256sum`"

// ParseAPIKeys parses DOPPEL_API_KEYS. Error messages name entries by position and name, never by
// hash.
func ParseAPIKeys(raw string) ([]apikey.Key, error) {
	var keys []apikey.Key
	var errs []error
	seen := map[string]bool{}
	hashes := map[[32]byte]bool{}
	for i, entry := range strings.FieldsFunc(raw, func(r rune) bool { return r == ';' || r == '\n' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, ":")
		if len(parts) != 3 {
			errs = append(errs, fmt.Errorf("DOPPEL_API_KEYS entry %d is not name:scopes:sha256hex; %s", i+1, apiKeysHelp))
			continue
		}
		name, scopes, digest := strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1]), strings.TrimSpace(parts[2])
		k := apikey.Key{Name: name}
		if !keyName.MatchString(name) {
			errs = append(errs, fmt.Errorf("DOPPEL_API_KEYS entry %d: the name must be 1-64 letters, digits, '.', '_', '@' or '-'", i+1))
		} else if seen[name] {
			errs = append(errs, fmt.Errorf("DOPPEL_API_KEYS entry %d: the name %q is used twice", i+1, name))
		}
		seen[name] = true
		for _, sc := range strings.Split(scopes, "+") {
			sc = strings.TrimSpace(sc)
			if !slices.Contains(apikey.Scopes, sc) {
				errs = append(errs, fmt.Errorf("DOPPEL_API_KEYS entry %d (%s): unknown scope %q; scopes are read, review and replay, joined by +", i+1, name, clip.Ellipsis(sc, 32)))
				continue
			}
			if !k.HasScope(sc) {
				k.Scopes = append(k.Scopes, sc)
			}
		}
		b, err := hex.DecodeString(digest)
		if err != nil || len(b) != 32 {
			errs = append(errs, fmt.Errorf("DOPPEL_API_KEYS entry %d (%s): the third part must be the key's SHA-256 as 64 hex digits (`printf %%s \"$KEY\" | sha256sum`)", i+1, name))
			continue
		}
		copy(k.SHA256[:], b)
		if hashes[k.SHA256] {
			errs = append(errs, fmt.Errorf("DOPPEL_API_KEYS entry %d (%s): the same key is configured twice", i+1, name))
		}
		hashes[k.SHA256] = true
		keys = append(keys, k)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return keys, nil
}

// Keys returns the parsed API keys; call it on a validated Config.
func (c Config) Keys() []apikey.Key {
	keys, _ := ParseAPIKeys(c.APIKeys)
	return keys
}
