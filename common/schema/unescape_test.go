package schema

import "testing"

func TestUnescapeDelimiter(t *testing.T) {
	for in, want := range map[string]string{
		`\n`:     "\n",
		`\0`:     "\x00",
		`\000`:   "\x00",
		`\0\0`:   "\x00\x00",
		`\r\n`:   "\r\n",
		`\t`:     "\t",
		`\x1e`:   "\x1e",
		`||`:     "||",
		`"`:      `"`,
		`a"b`:    `a"b`,
		`\"`:     `"`,
		`\\`:     `\`,
		`\\0`:    `\0`,
		`---`:    "---",
		`\u00e9`: "é",
	} {
		got, err := Unescape(in)
		if err != nil || string(got) != want {
			t.Errorf("Unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
