package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// row is one figure of the final table.
type row struct {
	section, metric, value, target, verdict string
}

type report struct {
	rows  []row
	notes []string
	// flags lists each manager flag set by label, in order of use.
	flags [][2]string
}

func (r *report) add(section, metric, value, target, verdict string) {
	r.rows = append(r.rows, row{section, metric, value, target, verdict})
}

func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func (r *report) flagSet(label, cmdline string) {
	for _, f := range r.flags {
		if f[0] == label {
			return
		}
	}
	r.flags = append(r.flags, [2]string{label, cmdline})
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func (r *report) print(w io.Writer) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "== exchange-key-operator scale benchmark ==")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTION\tFIGURE\tVALUE\tTARGET\tRESULT")
	prev := ""
	for _, x := range r.rows {
		sec := x.section
		if sec == prev {
			sec = ""
		} else if prev != "" {
			fmt.Fprintln(tw, "\t\t\t\t")
		}
		prev = x.section
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", sec, x.metric, x.value, x.target, x.verdict)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Manager flags:")
	for _, f := range r.flags {
		fmt.Fprintf(w, "  %-8s %s\n", f[0]+":", f[1])
	}
	if len(r.notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Notes:")
		for _, n := range r.notes {
			fmt.Fprintln(w, "  - "+strings.ReplaceAll(n, "\n", "\n    "))
		}
	}
}
