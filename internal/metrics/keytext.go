package metrics

import (
	"bufio"
	"cmp"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// The per-key families, in the order of their names (the order of the text
// exposition). Help texts and names are the Descs' own.
const (
	famCondition = iota
	famAge
	famExpiry
	famLastValidation
	famReady
	famDeadline
	famTokenExpiry
	famTokenRenewal
	famCount
)

var families = [famCount]struct {
	name, help string
	desc       *prometheus.Desc
}{
	famCondition:      {"exchangeapikey_condition", conditionHelp, conditionDesc},
	famAge:            {"exchangeapikey_key_age_seconds", ageHelp, ageDesc},
	famExpiry:         {"exchangeapikey_key_expiry_timestamp_seconds", expiryHelp, expiryDesc},
	famLastValidation: {"exchangeapikey_last_validation_timestamp_seconds", lastValidationHelp, lastValidationDesc},
	famReady:          {"exchangeapikey_ready", readyHelp, readyDesc},
	famDeadline:       {"exchangeapikey_rotation_deadline_timestamp_seconds", deadlineHelp, deadlineDesc},
	famTokenExpiry:    {"exchangeapikey_token_expiry_timestamp_seconds", tokenExpiryHelp, tokenExpiryDesc},
	famTokenRenewal:   {"exchangeapikey_token_renewal_timestamp_seconds", tokenRenewHelp, tokenRenewDesc},
}

// sample is one per-key gauge: its family, value and, for the condition
// family, the condition it reports.
type sample struct {
	fam   int
	value float64
	cond  *metav1.Condition
}

// appendSamples appends k's gauges to dst. It is the one definition of what
// the per-key metrics say, for the collector and the text writer alike.
func appendSamples(dst []sample, k *keyopsv1.ExchangeAPIKey, now time.Time) []sample {
	ready := 0.0
	if meta.IsStatusConditionTrue(k.Status.Conditions, keyopsv1.ConditionReady) {
		ready = 1
	}
	dst = append(dst, sample{fam: famReady, value: ready})
	for i := range k.Status.Conditions {
		dst = append(dst, sample{fam: famCondition, value: 1, cond: &k.Status.Conditions[i]})
	}
	at := func(fam int, t *metav1.Time) {
		if t != nil {
			dst = append(dst, sample{fam: fam, value: float64(t.Unix())})
		}
	}
	at(famLastValidation, k.Status.LastValidationTime)
	at(famExpiry, k.Status.KeyExpiresAt)
	if t := k.Status.Token; t != nil && k.Spec.Token != nil {
		at(famTokenExpiry, t.ExpiresAt)
		at(famTokenRenewal, t.RenewAt)
	}
	if r := k.Status.Rotation; r != nil {
		at(famDeadline, r.RotateBy)
		basis := r.FirstSeen
		if r.AgeBasis == keyopsv1.AgeBasisExchangeCreateTime && k.Status.KeyCreatedAt != nil {
			basis = k.Status.KeyCreatedAt
		}
		if basis != nil {
			dst = append(dst, sample{fam: famAge, value: now.Sub(basis.Time).Seconds()})
		}
	}
	return dst
}

// compareKeys orders keys as the exposition orders their series: by the
// label values exchange, name, namespace (the labels sorted by name).
func compareKeys(a, b *keyopsv1.ExchangeAPIKey) int {
	return cmp.Or(strings.Compare(string(a.Spec.Exchange), string(b.Spec.Exchange)),
		strings.Compare(a.Name, b.Name), strings.Compare(a.Namespace, b.Namespace))
}

// compareConditions orders one key's condition series by reason, status, type.
func compareConditions(a, b sample) int {
	return cmp.Or(strings.Compare(a.cond.Reason, b.cond.Reason),
		strings.Compare(string(a.cond.Status), string(b.cond.Status)), strings.Compare(a.cond.Type, b.cond.Type))
}

// writeKeysText writes the per-key families in the Prometheus text format
// (0.0.4), byte for byte what the registry would write for KeyCollector's
// metrics, without building a protobuf message per series: at 10,000 keys
// the registry path allocated 10x the bytes of its response, this writes
// straight into w. keys is sorted in place.
func writeKeysText(w io.Writer, keys []*keyopsv1.ExchangeAPIKey, now time.Time) error {
	slices.SortFunc(keys, compareKeys)
	var present [famCount]bool
	buf := make([]sample, 0, 16)
	for _, k := range keys {
		buf = appendSamples(buf[:0], k, now)
		for _, s := range buf {
			present[s.fam] = true
		}
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	var num []byte
	for fam := range famCount {
		if !present[fam] {
			continue
		}
		f := families[fam]
		bw.WriteString("# HELP ")
		bw.WriteString(f.name)
		bw.WriteByte(' ')
		helpEscaper.WriteString(bw, f.help)
		bw.WriteString("\n# TYPE ")
		bw.WriteString(f.name)
		bw.WriteString(" gauge\n")
		for _, k := range keys {
			buf = appendSamples(buf[:0], k, now)
			if fam == famCondition {
				buf = slices.DeleteFunc(buf, func(s sample) bool { return s.fam != famCondition })
				slices.SortFunc(buf, compareConditions)
			}
			for _, s := range buf {
				if s.fam != fam {
					continue
				}
				bw.WriteString(f.name)
				writeLabel(bw, '{', "exchange", string(k.Spec.Exchange))
				writeLabel(bw, ',', "name", k.Name)
				writeLabel(bw, ',', "namespace", k.Namespace)
				if s.cond != nil {
					writeLabel(bw, ',', "reason", s.cond.Reason)
					writeLabel(bw, ',', "status", string(s.cond.Status))
					writeLabel(bw, ',', "type", s.cond.Type)
				}
				bw.WriteString("} ")
				num = appendFloat(num[:0], s.value)
				bw.Write(num)
				bw.WriteByte('\n')
			}
		}
	}
	return bw.Flush()
}

var (
	helpEscaper       = strings.NewReplacer("\\", `\\`, "\n", `\n`)
	labelValueEscaper = strings.NewReplacer("\\", `\\`, "\n", `\n`, "\"", `\"`)
)

func writeLabel(w *bufio.Writer, sep byte, name, value string) {
	w.WriteByte(sep)
	w.WriteString(name)
	w.WriteString(`="`)
	labelValueEscaper.WriteString(w, value)
	w.WriteByte('"')
}

// appendFloat formats v as expfmt's text encoder does.
func appendFloat(dst []byte, v float64) []byte {
	switch {
	case v == 1:
		return append(dst, '1')
	case v == 0:
		return append(dst, '0')
	case v == -1:
		return append(dst, "-1"...)
	case math.IsNaN(v):
		return append(dst, "NaN"...)
	case math.IsInf(v, +1):
		return append(dst, "+Inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-Inf"...)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}
