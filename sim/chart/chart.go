// Package chart draws bar charts as SVG files, for results that a person
// reads at a glance: a horizontal bar chart (one bar per row, with its name
// and value, optionally against a reference figure), or grouped vertical
// bars (groups such as workloads, each with one bar per series such as
// servers, and a legend). Either axis may be linear or logarithmic.
//
// The output depends only on the Chart: the same chart gives the same
// bytes. It has no dependencies beyond the standard library.
package chart

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/newtsim/newtsim/internal/atomicfile"
)

// Bar is one row of a horizontal bar chart.
type Bar struct {
	// Label names the bar; it is drawn left of the axis.
	Label string
	// Value is the bar's length, drawn after the plot with the chart's
	// unit. On a logarithmic axis it must be positive, on a linear one
	// not negative.
	Value float64
	// Note, if not empty, is drawn in grey after the value.
	Note string
	// Ref is a reference figure for the same row (a figure quoted from a
	// talk or paper, say). When it is not zero it is drawn as a thinner,
	// lighter bar under the main one, with its value, and the chart gets a
	// legend. The same rules as for Value apply.
	Ref float64
	// Lo and Hi, when Hi is not zero, are the spread of Value (the least
	// and greatest of repeated measurements, or an interval): drawn as an
	// error bar across the bar's end.
	Lo, Hi float64
}

// Group is one group of a grouped bar chart: one bar per series.
type Group struct {
	// Label names the group; it is drawn under the axis.
	Label string
	// Values holds one value per series, in the order of Chart.Series.
	Values []float64
	// Lo and Hi, when not nil, hold each value's spread, as Bar's do: an
	// error bar where Hi[i] is not zero.
	Lo, Hi []float64
}

// Chart is a bar chart. Give it Bars for a horizontal bar chart, or Series
// and Groups for grouped vertical bars, not both.
type Chart struct {
	// Title, if not empty, is drawn at the top.
	Title string
	// Caption, if not empty, is drawn in small grey letters at the
	// bottom: the machine and the commit that made the figures, say.
	Caption string
	// Unit follows every value drawn, and names the value axis.
	Unit string
	// Log makes the value axis logarithmic: decades (1, 10, 100, 1k, ...)
	// with grid lines, and bar lengths proportional to log10 of the value.
	// Values must then be positive.
	Log bool
	// Width is the width of the image in pixels. When zero, a horizontal
	// chart is 800 pixels wide and a grouped chart as wide as its groups
	// need.
	Width int

	// Bars are the rows of a horizontal bar chart, top to bottom.
	Bars []Bar
	// ValueLabel and RefLabel name the main bars and the reference bars in
	// the legend drawn when some bar has a Ref. They default to
	// "measured" and "talk".
	ValueLabel, RefLabel string

	// Series names the bars of each group of a grouped chart, in order;
	// each gets a colour and a legend entry.
	Series []string
	// Groups are the groups of a grouped chart, left to right.
	Groups []Group
}

// Colours of series, in order; they repeat after the last.
var palette = []string{
	"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
	"#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
}

const (
	refColour  = "#a0cbe8" // the lighter bar of a reference figure
	gridColour = "#dddddd"
	textColour = "#222222"
	noteColour = "#777777"
	fontSize   = 12
	charW      = 7.0 // a rough width of one character at fontSize
	smallCharW = 5.5 // the same at 9 pixels
	margin     = 10.0
)

// SVG draws the chart. It refuses a chart with no bars, with both Bars and
// Groups, with a group whose number of values differs from the number of
// series, with a value that is NaN or infinite, with a negative value, or,
// on a logarithmic axis, with a zero value (a zero Ref means no reference
// and is allowed).
func (c Chart) SVG() ([]byte, error) {
	switch {
	case len(c.Bars) > 0 && len(c.Groups) > 0:
		return nil, errors.New("chart: both Bars and Groups given; a chart is one or the other")
	case len(c.Bars) > 0:
		return c.horizontal()
	case len(c.Groups) > 0:
		return c.grouped()
	}
	return nil, errors.New("chart: no bars")
}

// WriteFile draws the chart and writes it to the file at path.
func (c Chart) WriteFile(path string) error {
	b, err := c.SVG()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}

// check refuses a value the axis cannot draw.
func (c Chart) check(what string, v float64) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("chart: %s is %v", what, v)
	case v < 0:
		return fmt.Errorf("chart: %s is negative (%v); bars start at zero", what, v)
	case v == 0 && c.Log:
		return fmt.Errorf("chart: %s is 0, which a logarithmic axis cannot draw", what)
	}
	return nil
}

// An axis maps values to lengths along the plot.
type axis struct {
	log    bool
	lo, hi float64 // linear: values; log: exponents of ten
	ticks  []float64
}

// newAxis makes an axis that holds the values, all valid for it.
func newAxis(log bool, values []float64) axis {
	if log {
		min, max := math.Inf(1), 0.0
		for _, v := range values {
			min = math.Min(min, v)
			max = math.Max(max, v)
		}
		// Start a decade below the smallest value's decade when it is a
		// power of ten itself, so that no bar has length zero.
		lo := float64(ceilExp(min) - 1)
		hi := float64(ceilExp(max))
		if hi <= lo {
			hi = lo + 1
		}
		a := axis{log: true, lo: lo, hi: hi}
		for e := lo; e <= hi; e++ {
			a.ticks = append(a.ticks, math.Pow(10, e))
		}
		return a
	}
	max := 0.0
	for _, v := range values {
		max = math.Max(max, v)
	}
	step := niceStep(max / 5)
	n := math.Ceil(max/step - 1e-9)
	if n < 1 {
		n = 1
	}
	a := axis{lo: 0, hi: n * step}
	for i := 0.0; i <= n; i++ {
		a.ticks = append(a.ticks, i*step)
	}
	return a
}

// frac returns where v lies along the axis, from 0 to 1.
func (a axis) frac(v float64) float64 {
	if a.log {
		return (math.Log10(v) - a.lo) / (a.hi - a.lo)
	}
	return (v - a.lo) / (a.hi - a.lo)
}

// floorExp returns the largest e with 10^e <= v, for v > 0, robust to the
// rounding of math.Log10.
func floorExp(v float64) int {
	e := int(math.Floor(math.Log10(v)))
	for math.Pow(10, float64(e)) > v {
		e--
	}
	for math.Pow(10, float64(e+1)) <= v {
		e++
	}
	return e
}

// ceilExp returns the smallest e with 10^e >= v, for v > 0.
func ceilExp(v float64) int {
	e := floorExp(v)
	if math.Pow(10, float64(e)) < v {
		e++
	}
	return e
}

// niceStep returns the smallest of 1, 2 or 5 times a power of ten that is
// at least raw (1 for raw <= 0, when every value is zero).
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, float64(floorExp(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw*(1-1e-12) {
			return m * p
		}
	}
	return 10 * p
}

// tickLabel names a tick: decades as 1, 10, 100, 1k, 10k, 100k, 1M, ...
func tickLabel(v float64) string {
	return Format(v)
}

// Format writes a value with three significant digits and an SI suffix
// for thousands and up: 0.5, 12, 123, 1.23k, 45.6M, 1G. It is the form
// used for values and axis labels.
func Format(v float64) string {
	if v == 0 {
		return "0"
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
	a := math.Abs(r)
	for _, s := range []struct {
		div    float64
		suffix string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if a >= s.div {
			return trimFloat(r/s.div) + s.suffix
		}
	}
	if a < 1e-3 {
		return strconv.FormatFloat(r, 'g', 3, 64)
	}
	return trimFloat(r)
}

// trimFloat writes v with at most three significant digits and no
// trailing zeros.
func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'g', 3, 64)
	if strings.ContainsAny(s, "e") {
		// 'g' chose an exponent (for 100 <= |v| < 1000 with a round
		// value, e.g. 1e+02): write it out.
		f, _ := strconv.ParseFloat(s, 64)
		s = strconv.FormatFloat(f, 'f', -1, 64)
	}
	return s
}

// withUnit appends the chart's unit to a formatted value.
func (c Chart) withUnit(v float64) string {
	if c.Unit == "" {
		return Format(v)
	}
	return Format(v) + " " + c.Unit
}

// num writes a coordinate with at most two decimals.
func num(x float64) string {
	r := math.Round(x*100) / 100
	if r == 0 {
		r = 0 // no "-0"
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// esc escapes text for XML character data and attribute values.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func textWidth(s string, perChar float64) float64 {
	return float64(utf8.RuneCountInString(s)) * perChar
}

// svgWriter accumulates the document.
type svgWriter struct {
	bytes.Buffer
}

func (w *svgWriter) printf(format string, args ...any) {
	fmt.Fprintf(&w.Buffer, format, args...)
}

func (w *svgWriter) open(width, height float64) {
	w.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-family="sans-serif" font-size="%d">`+"\n",
		num(width), num(height), num(width), num(height), fontSize)
	w.printf(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
}

func (w *svgWriter) title(c Chart) {
	if c.Title == "" {
		return
	}
	w.printf(`<text class="title" x="%s" y="22" font-size="15" font-weight="bold" fill="%s">%s</text>`+"\n",
		num(margin), textColour, esc(c.Title))
}

// legend draws entries left to right from (x, y), wrapping before maxX,
// and returns the y under the last row.
func (w *svgWriter) legend(names, colours []string, x, y, maxX float64) float64 {
	x0 := x
	for i, name := range names {
		wd := 14 + 6 + textWidth(name, charW) + 16
		if x > x0 && x+wd > maxX {
			x = x0
			y += 18
		}
		w.printf(`<g class="legend"><rect x="%s" y="%s" width="14" height="10" fill="%s"/><text x="%s" y="%s" fill="%s">%s</text></g>`+"\n",
			num(x), num(y-9), colours[i], num(x+20), num(y), textColour, esc(name))
		x += wd
	}
	return y + 18
}

// rect draws a bar with a tooltip.
func (w *svgWriter) rect(class string, x, y, width, height float64, fill, tip string) {
	w.printf(`<rect class="%s" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>`+"\n",
		class, num(x), num(y), num(width), num(height), fill, esc(tip))
}

func (c Chart) horizontal() ([]byte, error) {
	var values []float64
	hasRef := false
	for i, b := range c.Bars {
		if err := c.check(fmt.Sprintf("bar %d (%q) value", i, b.Label), b.Value); err != nil {
			return nil, err
		}
		values = append(values, b.Value)
		if b.Hi != 0 {
			if err := c.checkSpread(fmt.Sprintf("bar %d (%q)", i, b.Label), b.Lo, b.Hi); err != nil {
				return nil, err
			}
			values = append(values, b.Hi)
		}
		if b.Ref != 0 {
			if err := c.check(fmt.Sprintf("bar %d (%q) reference", i, b.Label), b.Ref); err != nil {
				return nil, err
			}
			values = append(values, b.Ref)
			hasRef = true
		}
	}
	ax := newAxis(c.Log, values)
	valueName, refName := c.ValueLabel, c.RefLabel
	if valueName == "" {
		valueName = "measured"
	}
	if refName == "" {
		refName = "talk"
	}

	width := float64(c.Width)
	if width <= 0 {
		width = 800
	}
	labelW, valueW := 0.0, 0.0
	for _, b := range c.Bars {
		labelW = math.Max(labelW, textWidth(b.Label, charW))
		t := c.withUnit(b.Value)
		if b.Note != "" {
			t += "  " + b.Note
		}
		valueW = math.Max(valueW, textWidth(t, charW))
		if b.Ref != 0 {
			valueW = math.Max(valueW, textWidth(refName+" "+c.withUnit(b.Ref), smallCharW))
		}
	}
	labelW = math.Min(labelW+8, width/3)
	valueW = math.Min(valueW+8, width/3)
	plotL := margin + labelW
	plotR := width - margin - valueW
	plotW := plotR - plotL
	if plotW < 50 {
		return nil, fmt.Errorf("chart: %v pixels are too narrow for these labels", width)
	}

	rowH, barH := 20.0, 14.0
	if hasRef {
		rowH = 28
	}
	y := 12.0
	if c.Title != "" {
		y = 36
	}
	var w svgWriter
	// The height is known once the rows are laid out; write the body
	// first and the header last.
	if hasRef {
		y += 14
		y = w.legend([]string{valueName, refName}, []string{palette[0], refColour}, plotL, y, width-margin) - 4
	}
	plotT := y
	plotB := plotT + rowH*float64(len(c.Bars)) + 4
	x := func(v float64) float64 { return plotL + ax.frac(v)*plotW }

	// Grid and axis labels.
	for _, t := range ax.ticks {
		tx := x(t)
		w.printf(`<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n",
			num(tx), num(plotT), num(tx), num(plotB), gridColour)
		w.printf(`<text class="tick" x="%s" y="%s" text-anchor="middle" fill="%s">%s</text>`+"\n",
			num(tx), num(plotB+15), textColour, esc(tickLabel(t)))
	}
	w.printf(`<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n",
		num(plotL), num(plotT), num(plotL), num(plotB), textColour)
	w.printf(`<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n",
		num(plotL), num(plotB), num(plotR), num(plotB), textColour)
	if axisName := c.axisName(); axisName != "" {
		w.printf(`<text class="unit" x="%s" y="%s" text-anchor="middle" fill="%s">%s</text>`+"\n",
			num((plotL+plotR)/2), num(plotB+32), noteColour, esc(axisName))
	}

	// Rows.
	for i, b := range c.Bars {
		top := plotT + 4 + rowH*float64(i)
		mid := top + barH/2 + 4
		w.printf(`<text class="label" x="%s" y="%s" text-anchor="end" fill="%s">%s</text>`+"\n",
			num(plotL-6), num(mid), textColour, esc(b.Label))
		w.rect("bar", plotL, top, x(b.Value)-plotL, barH, palette[0], b.Label+": "+c.withUnit(b.Value))
		if b.Hi != 0 {
			l, h, m := x(b.Lo), x(b.Hi), top+barH/2
			w.printf(`<path class="spread" d="M%s %sV%sM%s %sH%sM%s %sV%s" stroke="%s" fill="none"><title>%s</title></path>`+"\n",
				num(l), num(m-4), num(m+4), num(l), num(m), num(h), num(h), num(m-4), num(m+4), textColour,
				esc(b.Label+": "+c.withUnit(b.Lo)+" to "+c.withUnit(b.Hi)))
		}
		w.printf(`<text class="value" x="%s" y="%s" fill="%s">%s`, num(plotR+6), num(mid), textColour, esc(c.withUnit(b.Value)))
		if b.Note != "" {
			w.printf(`<tspan dx="8" fill="%s">%s</tspan>`, noteColour, esc(b.Note))
		}
		w.printf("</text>\n")
		if b.Ref != 0 {
			ry := top + barH + 2
			w.rect("ref", plotL, ry, x(b.Ref)-plotL, 6, refColour, b.Label+": "+refName+" "+c.withUnit(b.Ref))
			w.printf(`<text class="refvalue" x="%s" y="%s" font-size="9" fill="%s">%s</text>`+"\n",
				num(plotR+6), num(ry+7), noteColour, esc(refName+" "+c.withUnit(b.Ref)))
		}
	}
	height := plotB + 24
	if c.axisName() != "" {
		height += 16
	}
	return c.finish(width, height, &w), nil
}

// axisName names the value axis: the unit, with "log scale" for a
// logarithmic one.
func (c Chart) axisName() string {
	switch {
	case c.Log && c.Unit != "":
		return c.Unit + " (log scale)"
	case c.Log:
		return "log scale"
	}
	return c.Unit
}

// finish puts the header and title before the body, and the caption
// under it.
func (c Chart) finish(width, height float64, body *svgWriter) []byte {
	var w svgWriter
	if c.Caption != "" {
		height += 16
	}
	w.open(width, height)
	w.title(c)
	w.Write(body.Bytes())
	if c.Caption != "" {
		w.printf(`<text class="caption" x="%s" y="%s" font-size="9" fill="%s">%s</text>`+"\n",
			num(margin), num(height-6), noteColour, esc(c.Caption))
	}
	w.printf("</svg>\n")
	return w.Bytes()
}

// checkSpread refuses a spread the axis cannot draw, or one that is not
// an interval.
func (c Chart) checkSpread(what string, lo, hi float64) error {
	if err := c.check(what+" low", lo); err != nil {
		return err
	}
	if err := c.check(what+" high", hi); err != nil {
		return err
	}
	if lo > hi {
		return fmt.Errorf("chart: %s: low %v above high %v", what, lo, hi)
	}
	return nil
}

func (c Chart) grouped() ([]byte, error) {
	if len(c.Series) == 0 {
		return nil, errors.New("chart: groups without series")
	}
	var values []float64
	for i, g := range c.Groups {
		if len(g.Values) != len(c.Series) {
			return nil, fmt.Errorf("chart: group %d (%q) has %d values for %d series", i, g.Label, len(g.Values), len(c.Series))
		}
		for j, v := range g.Values {
			if err := c.check(fmt.Sprintf("group %d (%q) series %d (%q)", i, g.Label, j, c.Series[j]), v); err != nil {
				return nil, err
			}
			values = append(values, v)
		}
		if g.Lo != nil || g.Hi != nil {
			if len(g.Lo) != len(c.Series) || len(g.Hi) != len(c.Series) {
				return nil, fmt.Errorf("chart: group %d (%q) has %d lows and %d highs for %d series", i, g.Label, len(g.Lo), len(g.Hi), len(c.Series))
			}
			for j := range g.Hi {
				if g.Hi[j] == 0 {
					continue
				}
				if err := c.checkSpread(fmt.Sprintf("group %d (%q) series %d", i, g.Label, j), g.Lo[j], g.Hi[j]); err != nil {
					return nil, err
				}
				values = append(values, g.Hi[j])
			}
		}
	}
	ax := newAxis(c.Log, values)

	const barW, gap, plotH = 16.0, 20.0, 240.0
	groupW := float64(len(c.Series))*barW + gap
	valueH := 0.0 // room above the plot for the rotated values of the tallest bars
	for _, g := range c.Groups {
		groupW = math.Max(groupW, textWidth(g.Label, charW)+10)
		for _, v := range g.Values {
			valueH = math.Max(valueH, textWidth(c.withUnit(v), smallCharW))
		}
	}
	tickW := 0.0
	for _, t := range ax.ticks {
		tickW = math.Max(tickW, textWidth(tickLabel(t), charW))
	}
	plotL := margin + 18 + tickW + 6 // the rotated axis name, then the tick labels
	plotR := plotL + groupW*float64(len(c.Groups))
	width := float64(c.Width)
	if width <= 0 {
		width = math.Max(plotR+margin, 360)
	}
	if plotR+margin > width {
		return nil, fmt.Errorf("chart: %v pixels are too narrow for %d groups (%v needed)", width, len(c.Groups), plotR+margin)
	}

	var w svgWriter
	y := 12.0
	if c.Title != "" {
		y = 36
	}
	colours := make([]string, len(c.Series))
	for i := range c.Series {
		colours[i] = palette[i%len(palette)]
	}
	y = w.legend(c.Series, colours, plotL, y+14, width-margin)
	plotT := y + valueH + 4
	plotB := plotT + plotH
	yOf := func(v float64) float64 { return plotB - ax.frac(v)*plotH }

	for _, t := range ax.ticks {
		ty := yOf(t)
		w.printf(`<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n",
			num(plotL), num(ty), num(plotR), num(ty), gridColour)
		w.printf(`<text class="tick" x="%s" y="%s" text-anchor="end" fill="%s">%s</text>`+"\n",
			num(plotL-5), num(ty+4), textColour, esc(tickLabel(t)))
	}
	w.printf(`<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n",
		num(plotL), num(plotT), num(plotL), num(plotB), textColour)
	w.printf(`<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>`+"\n",
		num(plotL), num(plotB), num(plotR), num(plotB), textColour)
	if name := c.axisName(); name != "" {
		ax, ay := margin+12, (plotT+plotB)/2
		w.printf(`<text class="unit" x="%s" y="%s" text-anchor="middle" transform="rotate(-90 %s %s)" fill="%s">%s</text>`+"\n",
			num(ax), num(ay), num(ax), num(ay), noteColour, esc(name))
	}

	for i, g := range c.Groups {
		gx := plotL + groupW*float64(i)
		inner := float64(len(c.Series)) * barW
		x0 := gx + (groupW-inner)/2
		for j, v := range g.Values {
			bx := x0 + barW*float64(j)
			by := yOf(v)
			w.rect("bar", bx+1, by, barW-2, plotB-by, colours[j], g.Label+", "+c.Series[j]+": "+c.withUnit(v))
			if g.Hi != nil && g.Hi[j] != 0 {
				l, h, m := yOf(g.Lo[j]), yOf(g.Hi[j]), bx+barW/2
				w.printf(`<path class="spread" d="M%s %sH%sM%s %sV%sM%s %sH%s" stroke="%s" fill="none"><title>%s</title></path>`+"\n",
					num(m-4), num(l), num(m+4), num(m), num(l), num(h), num(m-4), num(h), num(m+4), textColour,
					esc(g.Label+", "+c.Series[j]+": "+c.withUnit(g.Lo[j])+" to "+c.withUnit(g.Hi[j])))
			}
			tx, ty := bx+barW/2+3, by-3
			w.printf(`<text class="value" x="%s" y="%s" font-size="9" transform="rotate(-90 %s %s)" fill="%s">%s</text>`+"\n",
				num(tx), num(ty), num(tx), num(ty), textColour, esc(c.withUnit(v)))
		}
		w.printf(`<text class="label" x="%s" y="%s" text-anchor="middle" fill="%s">%s</text>`+"\n",
			num(gx+groupW/2), num(plotB+16), textColour, esc(g.Label))
	}
	return c.finish(width, plotB+28, &w), nil
}
