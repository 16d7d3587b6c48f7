package analyst

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's costs. They are written into every hash (the PHC string
// $argon2id$v=19$m=..,t=..,p=..$salt$hash), so a hash is verified with the costs it was made
// with, and raising DefaultParams upgrades each password at its owner's next sign-in
// (NeedsRehash).
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
	SaltLen   uint32
	KeyLen    uint32
}

// DefaultParams are OWASP's first argon2id choice (19 MiB, 2 passes, 1 lane): about 21 ms a
// hash here, cheap for a person, dear for a guesser holding a copy of the table.
var DefaultParams = Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// hashing bounds the hashes computed at once: each holds MemoryKiB, and a burst of sign-ins must
// not take the service's memory with it.
var hashing = make(chan struct{}, 4)

func derive(password string, salt []byte, p Params) []byte {
	hashing <- struct{}{}
	defer func() { <-hashing }()
	return argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
}

// HashPassword returns password's argon2id hash under DefaultParams, in PHC form.
func HashPassword(password string) (string, error) { return hashWith(password, DefaultParams) }

func hashWith(password string, p Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := derive(password, salt, p)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// errHashFormat is a stored hash that is not argon2id PHC; it never matches.
var errHashFormat = errors.New("not an argon2id PHC hash")

func parseHash(encoded string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errHashFormat
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errHashFormat
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil ||
		p.MemoryKiB == 0 || p.Time == 0 || p.Threads == 0 || p.MemoryKiB > 4<<20 || p.Time > 100 {
		return p, nil, nil, errHashFormat
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, errHashFormat
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 {
		return p, nil, nil, errHashFormat
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}

// VerifyPassword reports whether password matches encoded, computed with the parameters recorded
// in encoded and compared in constant time. A malformed hash matches nothing.
func VerifyPassword(encoded, password string) bool {
	p, salt, key, err := parseHash(encoded)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(derive(password, salt, p), key) == 1
}

// NeedsRehash reports whether encoded was made with costs below DefaultParams: the sign-in that
// just proved the password stores a new hash.
func NeedsRehash(encoded string) bool {
	p, _, _, err := parseHash(encoded)
	return err != nil || p.MemoryKiB < DefaultParams.MemoryKiB || p.Time < DefaultParams.Time ||
		p.Threads < DefaultParams.Threads || p.KeyLen < DefaultParams.KeyLen || p.SaltLen < DefaultParams.SaltLen
}

// dummyHash is verified against when a sign-in names no account, so the answer takes as long as
// for a wrong password and the timing does not tell which names exist.
var dummyHash, _ = HashPassword("no account has this password")

// VerifyNobody spends the time VerifyPassword spends, for a name with no account.
func VerifyNobody(password string) { VerifyPassword(dummyHash, password) }

// MinPasswordLen is the shortest password accepted: length is what makes a password hard to guess.
const MinPasswordLen = 12

// common are passwords of the required length that every guessing list starts with.
var common = []string{"password1234", "123456789012", "qwertyuiopas", "passwordpassword", "letmeinletmein",
	"administrator", "iloveyou1234", "welcome12345", "changeme1234", "doppeldoppel"}

// CheckPassword refuses a password too weak to keep: empty, shorter than MinPasswordLen
// characters, longer than 256 bytes, built of fewer than 5 different characters, containing the
// analyst's name, or one of the first entries of every guessing list. The message says which.
func CheckPassword(name, password string) error {
	lower := strings.ToLower(password)
	distinct := map[rune]bool{}
	for _, r := range password {
		distinct[r] = true
	}
	switch {
	case password == "":
		return errors.New("the password is empty")
	case utf8.RuneCountInString(password) < MinPasswordLen:
		return fmt.Errorf("the password is shorter than %d characters", MinPasswordLen)
	case len(password) > 256:
		return errors.New("the password is longer than 256 bytes")
	case len(distinct) < 5:
		return errors.New("the password uses fewer than 5 different characters")
	case name != "" && strings.Contains(lower, strings.ToLower(name)):
		return errors.New("the password contains the analyst's name")
	}
	for _, c := range common {
		if strings.Contains(lower, c) {
			return errors.New("the password is on every guessing list")
		}
	}
	return nil
}
