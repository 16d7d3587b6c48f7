package advance

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGetEvidenceReadsTheDocumentUnderItsUsualNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  any
		want DocDetail
	}{
		{"ocrResult object", map[string]any{"docType": "PH-ID-N", "ocrResult": map[string]any{"fullName": "Ana Cruz", "birthday": "1990-02-03", "idNumber": "1234"}},
			DocDetail{Type: "PH-ID-N", FullName: "Ana Cruz", BirthDate: "1990-02-03", IDNumber: "1234"}},
		{"top level, other names", map[string]any{"documentType": "TH-ID-N", "name": "Bo", "dateOfBirth": "1980-01-01", "documentNumber": 987},
			DocDetail{Type: "TH-ID-N", FullName: "Bo", BirthDate: "1980-01-01", IDNumber: "987"}},
		{"wrapped values", map[string]any{"ocrResult": map[string]any{"name": map[string]any{"value": "Cy", "confidence": 0.9}}},
			DocDetail{FullName: "Cy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			var sent map[string]any
			b.vendor.set(&b.vendor.getResult, func(w http.ResponseWriter, r *http.Request, _ int64) {
				raw, _ := io.ReadAll(r.Body)
				_ = json.Unmarshal(raw, &sent)
				writeEnvelope(w, http.StatusOK, "SUCCESS", "OK", map[string]any{
					"overallResult": "PASS", "inputParameters": map[string]any{"userId": "u-1"},
					"faceDetail": map[string]any{"faceResult": "PASS", "faceImage": "aGVsbG8=", "faceImageTime": 1700000000000},
					"docDetail":  tt.doc,
				})
			})
			ev, err := b.client.GetEvidence(context.Background(), "sig-1", ImageBase64)
			require.NoError(t, err)
			require.Equal(t, "BASE64", sent["returnImageType"])
			require.Equal(t, "u-1", ev.UserID)
			require.Equal(t, "aGVsbG8=", ev.Face.Image)
			require.Equal(t, int64(1700000000000), ev.Face.CapturedAt.UnixMilli())
			require.Equal(t, tt.want, *ev.Document)
		})
	}
}

func TestGetEvidenceWithoutDetails(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.vendor.set(&b.vendor.getResult, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		writeEnvelope(w, http.StatusOK, "SUCCESS", "OK", map[string]any{"overallResult": "INCOMPLETE", "faceDetail": nil, "docDetail": nil})
	})
	ev, err := b.client.GetEvidence(context.Background(), "sig-1", ImageBase64)
	require.NoError(t, err)
	require.Nil(t, ev.Face)
	require.Nil(t, ev.Document)
	require.Equal(t, "sig-1", ev.SignatureID)
}
