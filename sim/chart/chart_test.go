package chart

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// charts are the golden cases: testdata/NAME.svg holds each one's drawing.
var charts = []struct {
	name  string
	chart Chart
}{
	{"horizontal_log", Chart{
		Title: "Requests per second, one core",
		Unit:  "req/s",
		Log:   true,
		Bars: []Bar{
			{Label: "linux", Value: 152000, Ref: 180000},
			{Label: "newt (messages)", Value: 41300, Note: "batching off", Ref: 95000},
			{Label: "newt (shared memory)", Value: 88000},
			{Label: "user-level stub", Value: 1250, Note: "one request in flight"},
			{Label: "a <b> & \"c\"", Value: 7},
		},
	}},
	{"horizontal_linear", Chart{
		Title: "Median latency",
		Unit:  "µs",
		Bars: []Bar{
			{Label: "udp echo", Value: 23.5},
			{Label: "tcp echo", Value: 31},
			{Label: "pipe", Value: 7.25, Note: "same core"},
			{Label: "nothing", Value: 0},
		},
	}},
	{"horizontal_noref", Chart{
		Log:  true,
		Bars: []Bar{{Label: "one", Value: 1}, {Label: "ten", Value: 10}, {Label: "hundred", Value: 100}},
	}},
	{"grouped_linear", Chart{
		Title:  "Throughput by workload",
		Unit:   "MB/s",
		Series: []string{"linux", "newt", "newt+batch"},
		Groups: []Group{
			{Label: "bulk 64k", Values: []float64{2400, 1100, 1900}},
			{Label: "rpc 100B", Values: []float64{31, 12.5, 28}},
			{Label: "mixed", Values: []float64{800, 410, 0}},
		},
	}},
	{"grouped_log", Chart{
		Title:  "System calls per request",
		Log:    true,
		Series: []string{"linux", "newt", "stub", "a&b"},
		Groups: []Group{
			{Label: "GET /", Values: []float64{12, 3, 1, 2}},
			{Label: "POST 1M", Values: []float64{4100, 260, 18, 33}},
		},
	}},
}

func TestGolden(t *testing.T) {
	for _, tc := range charts {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.chart.SVG()
			if err != nil {
				t.Fatal(err)
			}
			again, err := tc.chart.SVG()
			if err != nil || !bytes.Equal(got, again) {
				t.Fatalf("a second drawing differs (err %v)", err)
			}
			path := filepath.Join("testdata", tc.name+".svg")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the drawing (go test -update rewrites it):\n%s", path, firstDiff(got, want))
			}
		})
	}
}

func firstDiff(got, want []byte) string {
	g := strings.Split(string(got), "\n")
	w := strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n got  " + gl + "\n want " + wl
		}
	}
	return "(same lines)"
}

// element is a parsed SVG element with its attributes and text.
type element struct {
	name  string
	attrs map[string]string
	text  string
}

// parse walks the document with encoding/xml and returns its elements.
func parse(t *testing.T, doc []byte) []element {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	var els []element
	var stack []int
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := element{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			els = append(els, e)
			stack = append(stack, len(els)-1)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				els[stack[len(stack)-1]].text += string(tok)
			}
		}
	}
	if len(els) == 0 || els[0].name != "svg" || els[0].attrs["xmlns"] != "http://www.w3.org/2000/svg" {
		t.Fatalf("the root is not an svg element: %+v", els)
	}
	return els
}

func TestWellFormed(t *testing.T) {
	for _, tc := range charts {
		b, err := tc.chart.SVG()
		if err != nil {
			t.Fatal(err)
		}
		parse(t, b)
	}
}

func attr(t *testing.T, e element, name string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(e.attrs[name], 64)
	if err != nil {
		t.Fatalf("%s %s=%q: %v", e.name, name, e.attrs[name], err)
	}
	return v
}

func class(els []element, c string) []element {
	var out []element
	for _, e := range els {
		if e.attrs["class"] == c {
			out = append(out, e)
		}
	}
	return out
}

// On a log axis a bar's length is proportional to log10 of its value from
// the axis's first decade: bars ten times apart differ by one decade.
func TestLogBarLengths(t *testing.T) {
	values := []float64{3, 30, 7, 70000, 1000, 999.9}
	c := Chart{Log: true}
	for _, v := range values {
		c.Bars = append(c.Bars, Bar{Label: Format(v), Value: v})
	}
	b, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	els := parse(t, b)
	bars, grid, ticks := class(els, "bar"), class(els, "grid"), class(els, "tick")
	if len(bars) != len(values) {
		t.Fatalf("%d bars, want %d", len(bars), len(values))
	}
	var labels []string
	for _, e := range ticks {
		labels = append(labels, e.text)
	}
	if got, want := strings.Join(labels, " "), "1 10 100 1k 10k 100k"; got != want {
		t.Fatalf("decades labelled %q, want %q", got, want)
	}
	decade := attr(t, grid[1], "x1") - attr(t, grid[0], "x1")
	for i := 2; i < len(grid); i++ {
		if d := attr(t, grid[i], "x1") - attr(t, grid[i-1], "x1"); math.Abs(d-decade) > 0.02 {
			t.Fatalf("decade %d is %v wide, the first %v", i, d, decade)
		}
	}
	w := func(i int) float64 { return attr(t, bars[i], "width") }
	if d := w(1) - w(0); math.Abs(d-decade) > 0.02 {
		t.Errorf("bars of 30 and 3 differ by %v, want one decade, %v", d, decade)
	}
	for i, v := range values {
		want := math.Log10(v) * decade // the axis starts at 1
		if math.Abs(w(i)-want) > 0.01 {
			t.Errorf("bar of %v is %v long, want log10(%v) decades = %v", v, w(i), v, want)
		}
		if x := attr(t, bars[i], "x"); x != attr(t, grid[0], "x1") {
			t.Errorf("bar of %v starts at %v, not at the axis %v", v, x, attr(t, grid[0], "x1"))
		}
	}
	if w(4) <= w(5) {
		t.Errorf("bar of 1000 (%v) not longer than bar of 999.9 (%v)", w(4), w(5))
	}
}

// The same holds of the heights of grouped bars, measured from the bottom.
func TestLogGroupHeights(t *testing.T) {
	c := Chart{Log: true, Series: []string{"a", "b"}, Groups: []Group{
		{Label: "x", Values: []float64{5, 50}},
		{Label: "y", Values: []float64{0.5, 5000}},
	}}
	b, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	els := parse(t, b)
	bars, grid := class(els, "bar"), class(els, "grid")
	var labels []string
	for _, e := range class(els, "tick") {
		labels = append(labels, e.text)
	}
	if got, want := strings.Join(labels, " "), "0.1 1 10 100 1k 10k"; got != want {
		t.Fatalf("decades labelled %q, want %q", got, want)
	}
	decade := attr(t, grid[0], "y1") - attr(t, grid[1], "y1") // y grows downwards
	h := func(i int) float64 { return attr(t, bars[i], "height") }
	for _, p := range [][2]int{{0, 1}, {2, 0}} {
		if d := h(p[1]) - h(p[0]); math.Abs(d-decade) > 0.02 {
			t.Errorf("bars %d and %d, ten times apart, differ by %v, want a decade %v", p[0], p[1], d, decade)
		}
	}
	if d := h(3) - h(2); math.Abs(d-4*decade) > 0.02 {
		t.Errorf("bars of 0.5 and 5000 differ by %v, want four decades %v", d, 4*decade)
	}
	bottom := attr(t, grid[0], "y1")
	for i, e := range bars {
		if y := attr(t, e, "y") + h(i); math.Abs(y-bottom) > 0.01 {
			t.Errorf("bar %d ends at %v, not on the axis %v", i, y, bottom)
		}
	}
}

func TestLinearBarLengths(t *testing.T) {
	c := Chart{Bars: []Bar{{Label: "a", Value: 10}, {Label: "b", Value: 20}, {Label: "c", Value: 35}}}
	b, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	els := parse(t, b)
	bars, grid := class(els, "bar"), class(els, "grid")
	var labels []string
	for _, e := range class(els, "tick") {
		labels = append(labels, e.text)
	}
	if got, want := strings.Join(labels, " "), "0 10 20 30 40"; got != want {
		t.Fatalf("ticks %q, want %q", got, want)
	}
	per10 := attr(t, grid[1], "x1") - attr(t, grid[0], "x1")
	for i, v := range []float64{10, 20, 35} {
		if w := attr(t, bars[i], "width"); math.Abs(w-v/10*per10) > 0.01 {
			t.Errorf("bar of %v is %v long, want %v", v, w, v/10*per10)
		}
	}
}

func TestRefused(t *testing.T) {
	cases := []struct {
		name  string
		chart Chart
		want  string
	}{
		{"empty", Chart{}, "no bars"},
		{"both", Chart{Bars: []Bar{{Value: 1}}, Series: []string{"s"}, Groups: []Group{{Values: []float64{1}}}}, "both"},
		{"log zero", Chart{Log: true, Bars: []Bar{{Label: "a", Value: 1}, {Label: "z", Value: 0}}}, "logarithmic"},
		{"log negative", Chart{Log: true, Bars: []Bar{{Label: "n", Value: -10}}}, "negative"},
		{"log negative ref", Chart{Log: true, Bars: []Bar{{Label: "n", Value: 10, Ref: -1}}}, "negative"},
		{"linear negative", Chart{Bars: []Bar{{Label: "n", Value: -1}}}, "negative"},
		{"NaN", Chart{Bars: []Bar{{Label: "n", Value: math.NaN()}}}, "NaN"},
		{"Inf", Chart{Log: true, Bars: []Bar{{Label: "n", Value: math.Inf(1)}}}, "Inf"},
		{"group log zero", Chart{Log: true, Series: []string{"a", "b"}, Groups: []Group{{Label: "g", Values: []float64{1, 0}}}}, "logarithmic"},
		{"group log negative", Chart{Log: true, Series: []string{"a"}, Groups: []Group{{Label: "g", Values: []float64{-3}}}}, "negative"},
		{"group short", Chart{Series: []string{"a", "b"}, Groups: []Group{{Label: "g", Values: []float64{1}}}}, "1 values for 2 series"},
		{"no series", Chart{Groups: []Group{{Label: "g"}}}, "without series"},
		{"too narrow", Chart{Width: 100, Bars: []Bar{{Label: "a long label", Value: 1}}}, "too narrow"},
		{"groups too narrow", Chart{Width: 100, Series: []string{"a", "b"}, Groups: []Group{{Label: "g", Values: []float64{1, 2}}, {Label: "h", Values: []float64{1, 2}}}}, "too narrow"},
	}
	for _, tc := range cases {
		b, err := tc.chart.SVG()
		if err == nil {
			t.Errorf("%s: drawn, want an error:\n%s", tc.name, b)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want one that says %q", tc.name, err, tc.want)
		}
		if err := tc.chart.WriteFile(filepath.Join(t.TempDir(), "x.svg")); err == nil {
			t.Errorf("%s: WriteFile succeeded", tc.name)
		}
	}
}

// Text is escaped, and reads back as written.
func TestEscaped(t *testing.T) {
	nasty := `<script>alert("x")</script> & 'q' ]]>`
	for _, c := range []Chart{
		{Title: nasty, Unit: "<u>", Bars: []Bar{{Label: nasty, Value: 2, Note: nasty, Ref: 3}}, RefLabel: "&ref", ValueLabel: "<v>"},
		{Title: nasty, Unit: "<u>", Log: true, Series: []string{nasty}, Groups: []Group{{Label: nasty, Values: []float64{4}}}},
	} {
		b, err := c.SVG()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("<script")) || bytes.Contains(b, []byte("<u>")) || bytes.Contains(b, []byte("& ")) {
			t.Errorf("raw markup in the output:\n%s", b)
		}
		if !bytes.Contains(b, []byte("&lt;script&gt;")) || !bytes.Contains(b, []byte("&amp;")) {
			t.Errorf("escaped text not found:\n%s", b)
		}
		found := map[string]bool{}
		for _, e := range parse(t, b) {
			found[e.text] = true
		}
		for _, s := range []string{nasty, nasty + ": 2 <u>"} {
			if c.Groups != nil {
				s = strings.Replace(s, ": 2 <u>", ", "+nasty+": 4 <u>", 1)
			}
			if !found[s] {
				t.Errorf("%q does not read back from the document", s)
			}
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {1, "1"}, {10, "10"}, {100, "100"}, {1000, "1k"}, {1e4, "10k"}, {1e5, "100k"},
		{1e6, "1M"}, {1e9, "1G"}, {1e12, "1T"}, {0.1, "0.1"}, {0.01, "0.01"}, {0.5, "0.5"},
		{1234, "1.23k"}, {12345, "12.3k"}, {123456, "123k"}, {999999, "1M"}, {999.9, "1k"},
		{7.25, "7.25"}, {23.5, "23.5"}, {152000, "152k"}, {-1500, "-1.5k"}, {0.00001234, "1.23e-05"},
	} {
		if got := Format(tc.v); got != tc.want {
			t.Errorf("Format(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestAxisRange(t *testing.T) {
	for _, tc := range []struct {
		values []float64
		want   string
	}{
		{[]float64{3, 30}, "1 10 100"},
		{[]float64{1, 10}, "0.1 1 10"},
		{[]float64{5}, "1 10"},
		{[]float64{0.02, 2e6}, "0.01 0.1 1 10 100 1k 10k 100k 1M 10M"},
	} {
		ax := newAxis(true, tc.values)
		var l []string
		for _, v := range ax.ticks {
			l = append(l, tickLabel(v))
		}
		if got := strings.Join(l, " "); got != tc.want {
			t.Errorf("log axis for %v: %q, want %q", tc.values, got, tc.want)
		}
		for _, v := range tc.values {
			if f := ax.frac(v); f <= 0 || f > 1 {
				t.Errorf("log axis for %v: %v at %v, outside (0, 1]", tc.values, v, f)
			}
		}
	}
	for _, tc := range []struct {
		values []float64
		want   string
	}{
		{[]float64{35}, "0 10 20 30 40"},
		{[]float64{0}, "0 1"},
		{[]float64{2400, 31}, "0 500 1k 1.5k 2k 2.5k"},
		{[]float64{1}, "0 0.2 0.4 0.6 0.8 1"},
	} {
		ax := newAxis(false, tc.values)
		var l []string
		for _, v := range ax.ticks {
			l = append(l, tickLabel(v))
		}
		if got := strings.Join(l, " "); got != tc.want {
			t.Errorf("linear axis for %v: %q, want %q", tc.values, got, tc.want)
		}
	}
}

func TestWriteFile(t *testing.T) {
	c := charts[0].chart
	path := filepath.Join(t.TempDir(), "c.svg")
	if err := c.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := c.SVG()
	if !bytes.Equal(got, want) {
		t.Error("the file differs from SVG's bytes")
	}
}

// TestSpreadAndCaption: a bar or a grouped value with a spread gets an
// error bar (its tooltip names the interval), the caption is drawn, and a
// spread the axis cannot draw is refused.
func TestSpreadAndCaption(t *testing.T) {
	h := Chart{Unit: "ns", Caption: "machine X, commit abc", Bars: []Bar{
		{Label: "a", Value: 10, Lo: 8, Hi: 14}, {Label: "b", Value: 5}}}
	g := Chart{Unit: "req/s", Caption: "machine X, commit abc", Series: []string{"s1", "s2"}, Groups: []Group{
		{Label: "w", Values: []float64{100, 200}, Lo: []float64{90, 0}, Hi: []float64{130, 0}}}}
	for name, c := range map[string]Chart{"horizontal": h, "grouped": g} {
		b, err := c.SVG()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s := string(b)
		if n := strings.Count(s, `class="spread"`); n != 1 {
			t.Errorf("%s: %d error bars, want 1:\n%s", name, n, s)
		}
		if !strings.Contains(s, `class="caption"`) || !strings.Contains(s, "machine X, commit abc") {
			t.Errorf("%s: no caption:\n%s", name, s)
		}
	}
	if !strings.Contains(string(mustSVG(t, h)), "a: 8 ns to 14 ns") {
		t.Errorf("the error bar's tooltip does not name the interval:\n%s", mustSVG(t, h))
	}
	bad := []Chart{
		{Bars: []Bar{{Label: "a", Value: 10, Lo: 12, Hi: 11}}},
		{Log: true, Bars: []Bar{{Label: "a", Value: 10, Lo: 0, Hi: 11}}},
		{Series: []string{"s"}, Groups: []Group{{Label: "w", Values: []float64{1}, Lo: []float64{1}}}},
	}
	for i, c := range bad {
		if _, err := c.SVG(); err == nil {
			t.Errorf("bad spread %d: no error", i)
		}
	}
}

func mustSVG(t *testing.T, c Chart) []byte {
	t.Helper()
	b, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
