package advancesim

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// What get-result says about a completed verification, as the vendor's pages describe it: the face
// captured during liveness (data.faceDetail, FaceDetail) and the document read (data.docDetail).
// Image fields hold a link when returnImageType is URL (the default) and the image bytes in base64
// when it is BASE64; links expire after a day, as the vendor's do. Nothing is returned for a
// verification that has not completed: both details are null while it is INCOMPLETE.
//
// The vendor's FaceDetail fields are documented (faceResult, faceImage, faceImageTime,
// faceLivenessScore, faceSimilarityScore, ...). Its DocDetail page is not in our copy of the
// documentation: the simulator answers docType, docResult, frontImage and ocrResult with fullName,
// birthday (yyyy-mm-dd) and idNumber, and the client reads those names and their usual variants.

// imageLinkLifetime is how long an image link of a URL answer stays valid (the vendor: 1 day).
const imageLinkLifetime = 24 * time.Hour

// simDocType is the document type the simulator reads: a national identity card.
const simDocType = "PH-ID-N"

// identityOf returns the identity a session's documents carry: its person when the seed names one
// (the same human verifying under another account shows the same document), else its own userId,
// so that every account of a ring shows a different name, birth date and document number.
func identityOf(x *session) string {
	if x.person != "" {
		return "person:" + x.person
	}
	return "user:" + x.userID
}

// identity is what a synthetic document says.
type identity struct {
	fullName string
	birthday string
	idNumber string
}

var (
	givenNames = []string{"Maria", "Jose", "Ana", "Juan", "Rosa", "Carlo", "Liza", "Paolo", "Grace", "Miguel",
		"Joy", "Ramon", "Clara", "Rafael", "Nina", "Diego", "Elena", "Marco", "Luz", "Andres", "Bea", "Tomas",
		"Carmen", "Felix", "Irene", "Hugo", "Sofia", "Lito", "Pia", "Emil", "Vida", "Noel"}
	familyNames = []string{"Santos", "Reyes", "Cruz", "Bautista", "Ocampo", "Garcia", "Mendoza", "Torres",
		"Tomas", "Andrada", "Castillo", "Flores", "Villanueva", "Ramos", "Castro", "Rivera", "Aquino", "Navarro",
		"Salazar", "Mercado", "Aguilar", "Domingo", "Pascual", "Soriano", "Valdez", "Lim", "Tan", "Dizon",
		"Gonzales", "Manalo", "Roxas", "Lopez"}
)

// identityFor draws a deterministic identity from key.
func identityFor(key string) identity {
	sum := sha256.Sum256([]byte("identity\x00" + key))
	a := binary.BigEndian.Uint64(sum[0:8])
	b := binary.BigEndian.Uint64(sum[8:16])
	born := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(b%(40*365)))
	num := strconv.FormatUint(binary.BigEndian.Uint64(sum[16:24])%1_000_000_000_000, 10)
	for len(num) < 12 {
		num = "0" + num
	}
	return identity{
		fullName: givenNames[a%uint64(len(givenNames))] + " " + familyNames[(a>>16)%uint64(len(familyNames))],
		birthday: born.Format("2006-01-02"),
		idNumber: num[0:4] + "-" + num[4:8] + "-" + num[8:12],
	}
}

// faceImages caches the picture of each face: drawing it is cheap, but not free on the hot path.
var faceImages sync.Map // face -> []byte (PNG)

// facePNG returns the synthetic picture of a face: one picture per face, so that two accounts with
// one face show the same picture, and different faces different ones.
func facePNG(face string) []byte {
	if b, ok := faceImages.Load(face); ok {
		return b.([]byte)
	}
	b := drawFace(face)
	faceImages.Store(face, b)
	return b
}

// drawFace draws a small cartoon face whose colours and features come from the face's seed.
func drawFace(face string) []byte {
	const size = 96
	sum := sha256.Sum256([]byte("face\x00" + face))
	bg := color.RGBA{160 + sum[0]%80, 160 + sum[1]%80, 160 + sum[2]%80, 255}
	skins := []color.RGBA{{241, 194, 125, 255}, {224, 172, 105, 255}, {198, 134, 66, 255}, {141, 85, 36, 255}, {255, 219, 172, 255}}
	skin := skins[int(sum[3])%len(skins)]
	hair := color.RGBA{sum[4] % 90, sum[5] % 70, sum[6] % 50, 255}
	eye := color.RGBA{20, 20, 40, 255}
	mouth := color.RGBA{150 + sum[7]%80, 40, 50, 255}
	headRX, headRY := 28+int(sum[8]%8), 34+int(sum[9]%6)
	eyeGap, eyeY := 10+int(sum[10]%6), 42+int(sum[11]%6)
	hairLine := 20 + int(sum[12]%12)
	smile := int(sum[13]%7) - 3

	img := image.NewRGBA(image.Rect(0, 0, size, size))
	cx, cy := size/2, size/2+6
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			c := bg
			dx, dy := float64(x-cx)/float64(headRX), float64(y-cy)/float64(headRY)
			if dx*dx+dy*dy <= 1 {
				c = skin
				if y < cy-headRY+hairLine {
					c = hair
				}
			}
			img.SetRGBA(x, y, c)
		}
	}
	for _, ex := range []int{cx - eyeGap, cx + eyeGap} {
		for y := eyeY - 3; y <= eyeY+3; y++ {
			for x := ex - 3; x <= ex+3; x++ {
				if (x-ex)*(x-ex)+(y-eyeY)*(y-eyeY) <= 9 {
					img.SetRGBA(x, y, eye)
				}
			}
		}
	}
	for x := cx - 12; x <= cx+12; x++ {
		t := float64(x-cx) / 12
		y := cy + 16 + int(float64(smile)*(1-t*t))
		for w := 0; w < 3; w++ {
			img.SetRGBA(x, y+w, mouth)
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img) // an in-memory image always encodes
	return buf.Bytes()
}

// appendEvidence appends get-result's faceDetail and docDetail of a completed session, with images
// as links below base (imageType URL) or in base64 (BASE64).
func appendEvidence(data []byte, x *session, result, imageType, base string, now time.Time) []byte {
	if result == ResultIncomplete {
		return append(data, `,"faceDetail":null,"docDetail":null`...)
	}
	id := identityFor(identityOf(x))
	// image appends the picture of kind ("face" or "document") as the answer gives it.
	image := func(data []byte, kind string) []byte {
		if imageType == "BASE64" {
			raw := facePNG(x.face)
			if kind == "document" {
				raw = facePNG("document\x00" + identityOf(x))
			}
			data = append(data, '"')
			data = base64.StdEncoding.AppendEncode(data, raw)
			return append(data, '"')
		}
		// Links are built from the simulator's own address and ids, so nothing needs escaping.
		data = append(data, '"')
		data = append(data, base...)
		data = append(data, "/sim/images/"...)
		data = append(data, url.PathEscape(x.signatureID)...)
		data = append(data, '/')
		data = append(data, kind...)
		data = append(data, "?expires="...)
		data = strconv.AppendInt(data, now.Add(imageLinkLifetime).UnixMilli(), 10)
		return append(data, '"')
	}
	if x.face == "" {
		data = append(data, `,"faceDetail":null`...)
	} else {
		faceResult := "PASS"
		if result == ResultFail {
			faceResult = "FAIL"
		}
		data = append(data, `,"faceDetail":{"faceResult":`...)
		data = appendString(data, faceResult)
		data = append(data, `,"faceImage":`...)
		data = image(data, "face")
		data = append(data, `,"faceImageTime":`...)
		data = strconv.AppendInt(data, now.Add(-time.Minute).UnixMilli(), 10)
		data = append(data, `,"faceLivenessScore":98,"faceSimilarityScore":91}`...)
	}
	data = append(data, `,"docDetail":{"docType":`...)
	data = appendString(data, simDocType)
	data = append(data, `,"docResult":"PASS","frontImage":`...)
	data = image(data, "document")
	data = append(data, `,"ocrResult":{"fullName":`...)
	data = appendString(data, id.fullName)
	data = append(data, `,"birthday":`...)
	data = appendString(data, id.birthday)
	data = append(data, `,"idNumber":`...)
	data = appendString(data, id.idNumber)
	return append(data, "}}"...)
}

// requestBase returns the simulator's own address as the caller reached it, for image links.
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// handleImage implements GET /sim/images/{signatureId}/{kind}: the picture behind a link of a URL
// answer, until the link expires (403 then, as an expired signed link would be).
func (s *Sim) handleImage(w http.ResponseWriter, r *http.Request) {
	exp, err := strconv.ParseInt(r.URL.Query().Get("expires"), 10, 64)
	if err != nil || s.now().UnixMilli() >= exp {
		http.Error(w, "link expired: call get-result again for a new one", http.StatusForbidden)
		return
	}
	s.mu.RLock()
	x := s.sessions[r.PathValue("signatureId")]
	var result string
	if x != nil {
		result = x.result
	}
	s.mu.RUnlock()
	kind := r.PathValue("kind")
	if x == nil || result == ResultIncomplete || (kind != "face" && kind != "document") || (kind == "face" && x.face == "") {
		http.NotFound(w, r)
		return
	}
	b := facePNG(x.face)
	if kind == "document" {
		b = facePNG("document\x00" + identityOf(x))
	}
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(b)
}
