// Package secretformat renders key material into the shape a trading bot
// consumes: plain keys, environment variables, a ccxt or a freqtrade config,
// or the user's own template.
//
// Whether a target spec is acceptable is decided by Compile, from the spec
// alone (the format name, the template text), never from key material:
// someone who may write an ExchangeAPIKey but may not read Secrets sees the
// verdict in status, and a verdict that depended on the material would
// answer questions about it. Rendering a compiled spec then cannot fail, so
// it has no outcome besides the target Secret's data (see README.md,
// "Templates cannot read key material back").
package secretformat

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"text/template/parse"
)

// Format names match the CRD's target.format enum.
const (
	Plain     = "Plain"
	Env       = "Env"
	CCXT      = "CCXT"
	Freqtrade = "Freqtrade"
)

// MaxFieldBytes is the longest API key, secret or passphrase the operator
// accepts from a source Secret (far above any exchange's keys, PEM keys
// included). Together with MaxRenderedBytes it bounds what a template can
// render whatever the material, so that writing the target Secret cannot
// fail on the material's size.
const MaxFieldBytes = 8 << 10

// MaxRenderedBytes bounds the target Secret's data for material of
// MaxFieldBytes per field: a template that could render more is refused
// (the API server stores at most 1 MiB per Secret, labels and annotations
// included).
const MaxRenderedBytes = 512 << 10

// Material is what a format or template may use.
type Material struct {
	APIKey     string
	APISecret  string
	Passphrase string
	Exchange   string
	Endpoint   string
}

// Fields are the fields a template may substitute, in Material's order.
var Fields = []string{"APIKey", "APISecret", "Passphrase", "Exchange", "Endpoint"}

func (m Material) field(name string) string {
	switch name {
	case "APIKey":
		return m.APIKey
	case "APISecret":
		return m.APISecret
	case "Passphrase":
		return m.Passphrase
	case "Exchange":
		return m.Exchange
	case "Endpoint":
		return m.Endpoint
	}
	panic("secretformat: unknown field " + name) // Compile admits Fields only
}

// function is an encoding a template may apply to a field: total (defined
// for every string, never failing), and with a known bound on its output's
// length.
type function struct {
	apply func(string) string
	// max is the longest output for an input of n bytes, whatever they are.
	max func(n int64) int64
}

// functions are the encodings a template may use. None inspects its input
// beyond encoding it byte by byte: none can fail, branch the output's shape
// on the content, or compare it with anything.
var functions = map[string]function{
	// b64enc: standard base64 with padding.
	"b64enc": {func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }, func(n int64) int64 { return 4 * ((n + 2) / 3) }},
	// quote: a double-quoted string with JSON escapes, valid in JSON, YAML
	// and TOML.
	"quote": {jsonString, jsonMax},
	// toJson: the same, under Helm's and sprig's name.
	"toJson": {jsonString, jsonMax},
	// urlquery: escaped for a URL query (url.QueryEscape).
	"urlquery": {url.QueryEscape, func(n int64) int64 { return 3 * n }},
}

// FunctionNames lists the functions a template may use, sorted.
func FunctionNames() []string {
	out := make([]string, 0, len(functions))
	for n := range functions {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func jsonString(s string) string {
	var b strings.Builder
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(s) // a string always encodes (invalid UTF-8 becomes U+FFFD)
	return strings.TrimSuffix(b.String(), "\n")
}

// jsonMax: every byte at most six ("\u001f", or "\ufffd" for an invalid
// byte), plus the quotes.
func jsonMax(n int64) int64 { return 6*n + 2 }

// maxChain is the most functions one substitution may apply.
const maxChain = 4

// Renderer renders a compiled target spec. Render cannot fail.
type Renderer struct {
	format string
	// keys are the template's data keys, sorted; nil for a format.
	keys  []string
	tmpls map[string][]segment
}

// segment is literal text, or a field piped through functions.
type segment struct {
	text  string
	field string
	funcs []string
}

// Compile checks a target spec (a format, or a template that replaces it)
// without any key material, and prepares it for Render. Its errors quote
// the spec only.
func Compile(format string, tmpl map[string]string) (*Renderer, error) {
	if len(tmpl) == 0 {
		switch format {
		case "", Plain, Env, CCXT, Freqtrade:
			return &Renderer{format: format}, nil
		default:
			return nil, fmt.Errorf("unknown format %q (want Plain, Env, CCXT or Freqtrade)", format)
		}
	}
	r := &Renderer{tmpls: make(map[string][]segment, len(tmpl))}
	for k := range tmpl {
		r.keys = append(r.keys, k)
	}
	sort.Strings(r.keys)
	var total int64
	for _, k := range r.keys {
		segs, err := compileTemplate(k, tmpl[k])
		if err != nil {
			return nil, err
		}
		r.tmpls[k] = segs
		total += maxLen(segs)
	}
	if total > MaxRenderedBytes {
		return nil, fmt.Errorf("target.template can render up to %d bytes for key material of %d bytes per field, more than the %d bytes a target Secret may hold: use fewer substitutions", total, MaxFieldBytes, MaxRenderedBytes)
	}
	return r, nil
}

// Allowed says what a template may contain, for messages and docs.
func Allowed() string {
	fields := make([]string, len(Fields))
	for i, f := range Fields {
		fields[i] = "." + f
	}
	return fmt.Sprintf("a template may only substitute fields, as in {{ .APIKey }}, optionally piped through encodings, as in {{ .APISecret | b64enc }} or {{ quote .APIKey }}; fields: %s; functions: %s; no control flow (if, range, with), comparisons, variables or other functions",
		strings.Join(fields, " "), strings.Join(FunctionNames(), " "))
}

func compileTemplate(key, text string) ([]segment, error) {
	// Any identifier parses, so that the refusal below can say which
	// function is not allowed rather than "not defined".
	t := parse.New(key)
	t.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := t.Parse(text, "", "", trees); err != nil {
		return nil, fmt.Errorf("target.template[%s] does not parse: %s", key, err)
	}
	if len(trees) != 1 || trees[key] == nil {
		return nil, refusal(key, "`define` or `block` (control flow)")
	}
	var segs []segment
	for _, n := range trees[key].Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			segs = append(segs, segment{text: string(n.Text)})
		case *parse.ActionNode:
			seg, what := compileAction(n.Pipe)
			if what != "" {
				return nil, refusal(key, what)
			}
			segs = append(segs, seg)
		case *parse.CommentNode:
		case *parse.IfNode:
			return nil, refusal(key, "`if` (control flow)")
		case *parse.RangeNode:
			return nil, refusal(key, "`range` (control flow)")
		case *parse.WithNode:
			return nil, refusal(key, "`with` (control flow)")
		case *parse.TemplateNode:
			return nil, refusal(key, "`template` (control flow)")
		default:
			return nil, refusal(key, snippet(n.String()))
		}
	}
	return segs, nil
}

func refusal(key, what string) error {
	return fmt.Errorf("target.template[%s] uses %s: %s", key, what, Allowed())
}

// compileAction accepts {{ .F }}, {{ .F | f | g }}, {{ f .F }} and
// {{ f .F | g }}: one field, then functions of no other argument. It
// returns what it refuses otherwise.
func compileAction(p *parse.PipeNode) (segment, string) {
	if len(p.Decl) > 0 || p.IsAssign {
		return segment{}, "a variable (" + snippet(p.String()) + ")"
	}
	if len(p.Cmds) == 0 || len(p.Cmds) > maxChain+1 {
		return segment{}, "a pipeline of " + fmt.Sprint(len(p.Cmds)) + " commands (at most one field and " + fmt.Sprint(maxChain) + " functions)"
	}
	var seg segment
	first := p.Cmds[0].Args
	switch {
	case len(first) == 1:
		f, what := fieldOf(first[0])
		if what != "" {
			return segment{}, what
		}
		seg.field = f
	case len(first) == 2:
		fn, what := functionOf(first[0])
		if what != "" {
			return segment{}, what
		}
		f, what := fieldOf(first[1])
		if what != "" {
			return segment{}, what
		}
		seg.field, seg.funcs = f, []string{fn}
	default:
		return segment{}, badCommand(p.Cmds[0])
	}
	for _, c := range p.Cmds[1:] {
		if len(c.Args) != 1 {
			return segment{}, badCommand(c)
		}
		fn, what := functionOf(c.Args[0])
		if what != "" {
			return segment{}, what
		}
		seg.funcs = append(seg.funcs, fn)
	}
	if len(seg.funcs) > maxChain {
		return segment{}, fmt.Sprintf("%d functions in one substitution (at most %d)", len(seg.funcs), maxChain)
	}
	return seg, ""
}

// badCommand describes a command with more arguments than a field or an
// encoding of one field.
func badCommand(c *parse.CommandNode) string {
	if id, ok := c.Args[0].(*parse.IdentifierNode); ok {
		if _, allowed := functions[id.Ident]; allowed {
			return snippet(c.String()) + " (an encoding takes one field)"
		}
		return "the function " + id.Ident
	}
	return snippet(c.String())
}

func fieldOf(n parse.Node) (string, string) {
	f, ok := n.(*parse.FieldNode)
	if !ok {
		return "", describe(n)
	}
	if len(f.Ident) != 1 {
		return "", snippet(f.String())
	}
	for _, name := range Fields {
		if f.Ident[0] == name {
			return name, ""
		}
	}
	return "", "the unknown field " + snippet(f.String())
}

func functionOf(n parse.Node) (string, string) {
	id, ok := n.(*parse.IdentifierNode)
	if !ok {
		return "", describe(n)
	}
	if _, ok := functions[id.Ident]; !ok {
		return "", "the function " + id.Ident
	}
	return id.Ident, ""
}

func describe(n parse.Node) string {
	switch n := n.(type) {
	case *parse.IdentifierNode:
		return "the function " + n.Ident
	case *parse.DotNode:
		return "{{ . }}"
	case *parse.VariableNode:
		return "a variable (" + snippet(n.String()) + ")"
	case *parse.PipeNode:
		return "a nested pipeline (" + snippet(n.String()) + ")"
	}
	return snippet(n.String())
}

// snippet quotes part of a template (the user's spec, never material).
func snippet(s string) string {
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return "`" + s + "`"
}

// maxLen is the longest a template renders for material of MaxFieldBytes
// per field.
func maxLen(segs []segment) int64 {
	var n int64
	for _, s := range segs {
		if s.field == "" {
			n += int64(len(s.text))
			continue
		}
		m := int64(MaxFieldBytes)
		for _, f := range s.funcs {
			m = functions[f].max(m)
		}
		n += m
	}
	return n
}

// Render builds the target Secret's data. It cannot fail: every choice that
// can go wrong was made by Compile, from the spec alone. The data's keys
// depend on the spec only (the passphrase key on whether the exchange uses
// one, which readCredentials decides from the exchange).
func (r *Renderer) Render(m Material) map[string][]byte {
	if r.keys != nil {
		out := make(map[string][]byte, len(r.keys))
		for _, k := range r.keys {
			var b strings.Builder
			for _, s := range r.tmpls[k] {
				if s.field == "" {
					b.WriteString(s.text)
					continue
				}
				v := m.field(s.field)
				for _, f := range s.funcs {
					v = functions[f].apply(v)
				}
				b.WriteString(v)
			}
			out[k] = []byte(b.String())
		}
		return out
	}
	switch r.format {
	case Env:
		prefix := strings.ToUpper(m.Exchange) + "_API_"
		out := map[string][]byte{prefix + "KEY": []byte(m.APIKey), prefix + "SECRET": []byte(m.APISecret)}
		if m.Passphrase != "" {
			out[prefix+"PASSPHRASE"] = []byte(m.Passphrase)
		}
		return out
	case CCXT:
		// ccxt calls the passphrase "password".
		doc := struct {
			APIKey   string `json:"apiKey"`
			Secret   string `json:"secret"`
			Password string `json:"password,omitempty"`
		}{m.APIKey, m.APISecret, m.Passphrase}
		return map[string][]byte{"ccxt.json": mustJSON(doc)}
	case Freqtrade:
		type ex struct {
			Name     string `json:"name"`
			Key      string `json:"key"`
			Secret   string `json:"secret"`
			Password string `json:"password,omitempty"`
		}
		doc := struct {
			Exchange ex `json:"exchange"`
		}{ex{freqtradeName(m.Exchange), m.APIKey, m.APISecret, m.Passphrase}}
		return map[string][]byte{"config.json": mustJSON(doc)}
	default: // Plain
		out := map[string][]byte{"apiKey": []byte(m.APIKey), "apiSecret": []byte(m.APISecret)}
		if m.Passphrase != "" {
			out["passphrase"] = []byte(m.Passphrase)
		}
		return out
	}
}

// mustJSON encodes a struct of strings, which cannot fail: encoding/json
// fails only on types (channels, functions, cycles, failing Marshalers),
// never on a string's content (invalid UTF-8 becomes U+FFFD).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("secretformat: encoding a struct of strings: " + err.Error())
	}
	return b
}

// Render compiles the spec and renders m: a shorthand for tests and tools.
// Its error comes from Compile, never from m.
func Render(format string, tmpl map[string]string, m Material) (map[string][]byte, error) {
	r, err := Compile(format, tmpl)
	if err != nil {
		return nil, err
	}
	return r.Render(m), nil
}

// freqtradeName is the exchange id freqtrade (through ccxt) expects.
func freqtradeName(exchange string) string {
	if exchange == "coinbase" {
		return "coinbaseadvanced"
	}
	return exchange
}
