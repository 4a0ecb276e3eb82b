package benchkit

import (
	"fmt"
	"io"
	"strings"
)

// Table is a table of strings printed as Markdown or as aligned text.
type Table struct {
	align  string // one 'l' (left) or 'r' (right) per column
	header []string
	rows   [][]string
}

// NewTable returns a table with the given header; align has one 'l' or 'r'
// per column, for left- and right-aligned (numbers).
func NewTable(align string, header ...string) *Table {
	if len(align) != len(header) {
		panic(fmt.Sprintf("benchkit.NewTable: %d alignments for %d columns", len(align), len(header)))
	}
	return &Table{align: align, header: header}
}

// Row adds a row: one cell per column, missing cells empty.
func (t *Table) Row(cells ...string) {
	row := make([]string, len(t.header))
	copy(row, cells)
	t.rows = append(t.rows, row)
}

// Markdown prints the table as Markdown, "|" in cells escaped.
func (t *Table) Markdown(w io.Writer) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(t.header, " | "))
	sep := make([]string, len(t.header))
	for i := range sep {
		sep[i] = "---"
		if t.align[i] == 'r' {
			sep[i] = "---:"
		}
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(sep, "|"))
	for _, row := range t.rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

// Text prints the table as columns of text two spaces apart, a line of
// dashes under the header, trailing spaces trimmed.
func (t *Table) Text(w io.Writer) {
	width := make([]int, len(t.header))
	for _, row := range append([][]string{t.header}, t.rows...) {
		for i, cell := range row {
			width[i] = max(width[i], len([]rune(cell)))
		}
	}
	line := func(row []string) {
		var b strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(cell)))
			if i > 0 {
				b.WriteString("  ")
			}
			if t.align[i] == 'r' {
				b.WriteString(pad + cell)
			} else {
				b.WriteString(cell + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(t.header)
	sep := make([]string, len(width))
	for i, n := range width {
		sep[i] = strings.Repeat("-", n)
	}
	line(sep)
	for _, row := range t.rows {
		line(row)
	}
}
