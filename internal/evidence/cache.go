package evidence

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// Cache limits.
const (
	DefaultTTL  = 5 * time.Minute
	MaxTTL      = 15 * time.Minute
	DefaultSize = 512
)

// Cache keeps the evidence fetched for recent page views in memory, bounded in entries and in
// age: an entry is dropped TTL after it was fetched, whether or not it was read since (reading
// does not extend it), and the least recently used goes first when the cache is full. It is
// hashicorp/golang-lru's expirable LRU, which gives exactly that, is safe for concurrent use and
// sweeps expired entries in the background, so personal data does not linger in a cache nobody
// reads. Nothing here is ever written anywhere else.
type Cache struct {
	records *expirable.LRU[string, *Record] // by region and signatureId
	faces   *expirable.LRU[string, *Record] // by FaceHandle
	// gone remembers the verifications the vendor does not know (SIGNATURE_NOT_EXIST), so a page
	// of them does not ask again at every view; it holds no personal data.
	gone *expirable.LRU[string, struct{}]
}

// NewCache returns a cache of at most size records, each kept for ttl.
func NewCache(size int, ttl time.Duration) *Cache {
	if size <= 0 {
		size = DefaultSize
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Cache{
		records: expirable.NewLRU[string, *Record](size, nil, ttl),
		faces:   expirable.NewLRU[string, *Record](size, nil, ttl),
		gone:    expirable.NewLRU[string, struct{}](size, nil, ttl),
	}
}

// PutGone remembers that the vendor does not know a verification.
func (c *Cache) PutGone(region, signatureID string) {
	c.gone.Add(cacheKey(region, signatureID), struct{}{})
}

// Gone reports whether the vendor said recently that it does not know a verification.
func (c *Cache) Gone(region, signatureID string) bool {
	_, ok := c.gone.Get(cacheKey(region, signatureID))
	return ok
}

// cacheKey names a verification: signatureIds are only unique within a vendor account.
func cacheKey(region, signatureID string) string { return region + "\x00" + signatureID }

// Get returns the cached record of a verification.
func (c *Cache) Get(region, signatureID string) (*Record, bool) {
	return c.records.Get(cacheKey(region, signatureID))
}

// Put caches a record, giving its face a fresh handle.
func (c *Cache) Put(r *Record) {
	if r.Face != nil {
		r.FaceHandle = newHandle()
		c.faces.Add(r.FaceHandle, r)
	}
	c.records.Add(cacheKey(r.Region, r.SignatureID), r)
}

// Face returns the picture cached under handle.
func (c *Cache) Face(handle string) (image []byte, mediaType string, ok bool) {
	r, ok := c.faces.Get(handle)
	if !ok || r.Face == nil {
		return nil, "", false
	}
	return r.Face, r.FaceType, true
}

// Len returns how many records are cached.
func (c *Cache) Len() int { return c.records.Len() }

// newHandle returns 128 random bits in hex: a face's URL cannot be guessed, only read off a page
// whose view was recorded.
func newHandle() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail (Go 1.24+)
	return hex.EncodeToString(b)
}
