package advance

import (
	stdjson "encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
)

// FuzzParseEnvelope feeds arbitrary answers to every response parser: none may panic, and each
// must return exactly one of a result and an *Error, the error being classified and printable.
func FuzzParseEnvelope(f *testing.F) {
	// The vendor page's examples, and the shapes around them.
	f.Add(200, "", []byte(seedSuccess))
	f.Add(200, "", []byte(`{"code":"PARAMETER_ERROR","message":"Parameter error,please check you input.","data":null,"extra":null,"transactionId":"ba134d6112c57a4c","pricingStrategy":"FREE"}`))
	f.Add(200, "", []byte(`{"code":"PARAMETER_ERROR","message":"Parameter should not be empty","data":null,"extra":null,"transactionId":"dfcdc346a81f404f","pricingStrategy":"FREE"}`))
	f.Add(200, "", []byte(`{"code":"ERROR","message":"Server error","data":null,"extra":null,"transactionId":"1deae5a13ef2bd5e","pricingStrategy":"FREE"}`))
	f.Add(429, "10s", []byte(`{"code":"SERVICE_BUSY","message":"busy","data":null,"extra":null,"transactionId":"x","pricingStrategy":"FREE"}`))
	f.Add(200, "", []byte(`{"code":"SUCCESS","message":"OK","data":{"token":"eyJ","expiredTime":1642580192430},"extra":null,"transactionId":"6c2c50a3049ce67e","pricingStrategy":"FREE"}`))
	f.Add(200, "", []byte(`{"code":"SUCCESS","data":{"overallResult":"PASS","submissionCompleted":true,"errorCode":null,"inputParameters":{"userId":"u"},"signatureId":"s"}}`))
	f.Add(503, "Wed, 21 Oct 2015 07:28:00 GMT", []byte(`<html>503</html>`))
	f.Add(200, "", []byte(`{"code":"SUCCESS","data":{"similarFaceUserIds":[null,"a"],"simliarFaceUserIds":["a"]}}`))

	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)

		check := func(name string, gotResult bool, e *Error) {
			if gotResult == (e != nil) {
				t.Fatalf("%s: result %v and error %v: want exactly one", name, gotResult, e)
			}
			if e == nil {
				return
			}
			if e.Code == "" || e.Op == "" {
				t.Fatalf("%s: error without code or op: %#v", name, e)
			}
			if e.Kind < KindTransient || e.Kind > KindAccount {
				t.Fatalf("%s: unknown kind %d", name, e.Kind)
			}
			if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
				t.Fatalf("%s: RetryAfter %s out of range", name, e.RetryAfter)
			}
			if len(e.Message) > 512 || len(e.TransactionID) > maxTransactionIDBytes {
				t.Fatalf("%s: unbounded text in error", name)
			}
			_ = e.Error()
		}

		fs, e := decodeFaceSearch(status, h, body, "sig", now)
		check("face-search", fs != nil, e)
		if fs != nil && fs.SimilarFaceUserIDs == nil {
			t.Fatal("face-search: nil id list")
		}
		res, e := decodeResult(status, h, body, "sig", now)
		check("get-result", res != nil, e)
		tok, e := decodeToken(status, h, body, now)
		check("generate-token", tok.value != "", e)
	})
}

// FuzzTheDecoderReadsAnswersAsTheStandardLibraryDoes guards the choice of segmentio/encoding for
// the vendor's answers (for speed): on any body, each shape the client decodes comes out as
// encoding/json would decode it, or both refuse it.
func FuzzTheDecoderReadsAnswersAsTheStandardLibraryDoes(f *testing.F) {
	f.Add([]byte(seedSuccess))
	f.Add([]byte(`{"code":"SUCCESS","data":{"similarFaceUserIds":[null,"a"],"simliarFaceUserIds":["a"]}}`))
	f.Add([]byte(`{"code":"SUCCESS","data":{"signatureId":"s","similarFaceUserIds":["\u0000x","\ud800","a\"b"]},"transactionId":"t"}`))
	f.Add([]byte(`{"Code":"SUCCESS","DATA":{"SimilarFaceUserIds":["a"]},"code":"ERROR"}`))
	f.Add([]byte(`{"code":"SUCCESS","data":{"overallResult":"PASS","submissionCompleted":true,"errorCode":null,"inputParameters":{"userId":"u"},"signatureId":"s"}}`))
	f.Add([]byte("{\"code\":\"SUCCESS\",\"data\":{\"similarFaceUserIds\":[\"\xff\xfe\"]}}"))
	f.Add([]byte(`{"code":"SUCCESS","data":{"similarFaceUserIds":"a"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		same := func(name string, fresh func() any) {
			ours, std := fresh(), fresh()
			errOurs, errStd := json.Unmarshal(body, ours), stdjson.Unmarshal(body, std)
			if (errOurs == nil) != (errStd == nil) {
				t.Fatalf("%s: segmentio error %v, encoding/json error %v", name, errOurs, errStd)
			}
			if errStd == nil && !reflect.DeepEqual(ours, std) {
				t.Fatalf("%s: segmentio %#v, encoding/json %#v", name, ours, std)
			}
		}
		same("envelope", func() any { return &envelope{} })
		same("face-search data", func() any { return &faceSearchData{} })
		same("get-result data", func() any { return &resultData{} })
	})
}
