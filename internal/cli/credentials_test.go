package cli

import (
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzParseCredentials: whatever the file holds, parsing never panics, and
// an error never quotes the key material, wherever it sits in the file
// (a value, a malformed line, a bad base64 field, a wrong kind).
func FuzzParseCredentials(f *testing.F) {
	for _, layout := range []uint8{0, 1, 2, 3, 4, 5, 6, 7} {
		f.Add("s3cr3t-VALUE-0123456789", layout)
	}
	f.Add("a\nb=c", uint8(0))
	f.Add("'quoted\"", uint8(1))
	f.Fuzz(func(t *testing.T, secret string, layout uint8) {
		var doc string
		switch layout % 8 {
		case 0: // dotenv value
			doc = "EAK_API_KEY=Kabcdefghijklmnop\nEAK_API_SECRET=" + secret + "\n"
		case 1: // a malformed dotenv line
			doc = "EAK_API_KEY=Kabcdefghijklmnop\n" + secret + "\n"
		case 2: // stringData
			doc = "kind: Secret\nstringData:\n  apiKey: Kabcdefghijklmnop\n  apiSecret: " + secret + "\n"
		case 3: // data, as given (likely not base64)
			doc = "kind: Secret\ndata:\n  apiKey: " + secret + "\n"
		case 4: // data, base64
			doc = "kind: Secret\ndata:\n  apiKey: " + base64.StdEncoding.EncodeToString([]byte(secret)) + "\n"
		case 5: // the kind itself
			doc = "kind: " + secret + "\ndata: {}\n"
		case 6: // JSON
			doc = `{"kind":"Secret","stringData":{"apiKey":"` + secret + `"}}`
		default: // the whole file
			doc = secret
		}
		c, err := parseCredentials([]byte(doc), "file")
		if err == nil {
			if c.APIKey == "" || c.APISecret == "" {
				t.Fatalf("no error, yet no key or secret")
			}
			return
		}
		// Only material long enough to be a key is checked: short strings
		// occur in the messages' own words. A kind is named on purpose
		// (layout 5): it is not key material.
		if layout%8 != 5 && len(strings.TrimSpace(secret)) >= 12 && strings.Contains(err.Error(), strings.TrimSpace(secret)) {
			t.Fatalf("the error quotes the input: %v", err)
		}
	})
}
