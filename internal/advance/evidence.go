package advance

import (
	"context"
	"net/http"
	"time"

	"github.com/segmentio/encoding/json"
)

// ImageType is how get-result returns images (returnImageType).
type ImageType string

// The vendor's image types. URL is its default: links that expire after a day.
const (
	ImageURL    ImageType = "URL"
	ImageBase64 ImageType = "BASE64"
)

// maxEvidenceBodyBytes bounds a get-result answer that carries images in base64: the vendor's
// pictures are tens to hundreds of kilobytes each, and an answer holds several.
const maxEvidenceBodyBytes = 16 << 20

// Evidence is what get-result says about the person behind a verification: the face captured
// during liveness and the document read. It is personal data: keep it in memory only, briefly,
// and never log it.
type Evidence struct {
	// SignatureID is the verification asked about.
	SignatureID string
	// OverallResult is "PASS", "FAIL" or "INCOMPLETE".
	OverallResult string
	// UserID is the userId the verification was created for.
	UserID string
	// Face is data.faceDetail; nil when the vendor returned none (an incomplete verification, or a
	// product without liveness).
	Face *FaceDetail
	// Document is data.docDetail; nil when the vendor returned none.
	Document *DocDetail
	// TransactionID is the vendor's request id.
	TransactionID string
}

// FaceDetail is the face of a verification.
type FaceDetail struct {
	// Result is faceResult: "PASS" or "FAIL".
	Result string
	// Image is faceImage as the vendor sent it: a link (ImageURL) or base64 image bytes
	// (ImageBase64).
	Image string
	// CapturedAt is faceImageTime; zero when absent.
	CapturedAt time.Time
}

// DocDetail is the document of a verification, as the vendor read it.
type DocDetail struct {
	// Type is docType, for example "PH-ID-N".
	Type string
	// FullName, BirthDate and IDNumber are what the vendor read on the document; empty when absent.
	FullName  string
	BirthDate string
	IDNumber  string
}

// GetEvidence calls get-result asking for images as images says, and returns the face and the
// document it describes. The call is free, like every get-result; with ImageBase64 the answer may
// be several megabytes.
func (c *Client) GetEvidence(ctx context.Context, signatureID string, images ImageType) (*Evidence, error) {
	if signatureID == "" {
		return nil, emptySignatureID(EndpointGetResult)
	}
	body, _ := json.Marshal(struct {
		SignatureID     string `json:"signatureId"`
		ReturnImageType string `json:"returnImageType"`
	}{signatureID, string(images)})
	var res *Evidence
	err := c.authorized(ctx, EndpointGetResult, pathGetResult, body, maxEvidenceBodyBytes, func(status int, h http.Header, b []byte) *Error {
		var e *Error
		res, e = decodeEvidence(status, h, b, signatureID, c.cfg.Now())
		return e
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// evidenceData is data of a get-result answer, the part the evidence is read from. The document's
// read fields are not in our copy of the vendor's DocDetail page, so the usual names of each are
// accepted, at docDetail's top level or in its ocrResult object.
type evidenceData struct {
	SignatureID     string          `json:"signatureId"`
	OverallResult   string          `json:"overallResult"`
	InputParameters json.RawMessage `json:"inputParameters"`
	FaceDetail      *struct {
		FaceResult    string          `json:"faceResult"`
		FaceImage     string          `json:"faceImage"`
		FaceImageFar  string          `json:"faceImageFar"`
		FaceImageTime json.RawMessage `json:"faceImageTime"`
	} `json:"faceDetail"`
	DocDetail map[string]json.RawMessage `json:"docDetail"`
}

// Names the document fields go by, in order of preference.
var (
	fullNameKeys  = []string{"fullName", "name", "full_name"}
	birthDateKeys = []string{"birthday", "dateOfBirth", "birthDate", "birth_date"}
	idNumberKeys  = []string{"idNumber", "documentNumber", "docNumber", "id_number"}
	docTypeKeys   = []string{"docType", "subDocType", "documentType"}
)

// decodeEvidence reads a get-result answer's evidence.
func decodeEvidence(status int, header http.Header, body []byte, signatureID string, now time.Time) (*Evidence, *Error) {
	env, e := decodeEnvelope(EndpointGetResult, status, header, body, now)
	if e != nil {
		return nil, e
	}
	if isNull(env.Data) {
		return nil, badData(EndpointGetResult, env, status, "no data")
	}
	var d evidenceData
	if err := json.Unmarshal(env.Data, &d); err != nil {
		return nil, badData(EndpointGetResult, env, status, "get-result data")
	}
	res := &Evidence{
		SignatureID:   d.SignatureID,
		OverallResult: d.OverallResult,
		UserID:        inputUserID(d.InputParameters),
		TransactionID: env.TransactionID,
	}
	if res.SignatureID == "" {
		res.SignatureID = signatureID
	}
	if f := d.FaceDetail; f != nil {
		res.Face = &FaceDetail{Result: f.FaceResult, Image: f.FaceImage}
		if res.Face.Image == "" {
			res.Face.Image = f.FaceImageFar // the default faceImage usually equals it
		}
		if ms, ok := epochMillis(f.FaceImageTime); ok {
			res.Face.CapturedAt = time.UnixMilli(ms).UTC()
		}
	}
	if d.DocDetail != nil {
		var ocr map[string]json.RawMessage
		_ = json.Unmarshal(d.DocDetail["ocrResult"], &ocr) // absent or not an object: top level only
		field := func(keys []string) string {
			for _, m := range []map[string]json.RawMessage{ocr, d.DocDetail} {
				for _, k := range keys {
					if v := readText(m[k]); v != "" {
						return v
					}
				}
			}
			return ""
		}
		res.Document = &DocDetail{Type: field(docTypeKeys), FullName: field(fullNameKeys),
			BirthDate: field(birthDateKeys), IDNumber: field(idNumberKeys)}
	}
	return res, nil
}

// readText reads a JSON string or number, or an object's "value" (some OCR answers wrap each
// field with its confidence); anything else gives "".
func readText(raw json.RawMessage) string {
	if s := scalarString(raw); s != "" {
		return s
	}
	var wrapped struct {
		Value json.RawMessage `json:"value"`
	}
	if json.Unmarshal(raw, &wrapped) == nil {
		return scalarString(wrapped.Value)
	}
	return ""
}

// epochMillis reads a JSON number or numeric string of epoch milliseconds.
func epochMillis(raw json.RawMessage) (int64, bool) {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		n = json.Number(s)
	}
	ms, err := n.Int64()
	return ms, err == nil && ms > 0
}
