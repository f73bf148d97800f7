package timeline

import (
	"cmp"
	"fmt"
	"html"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/newtsim/newtsim/internal/trace"
	"github.com/newtsim/newtsim/ipc"
)

// SVG layout, in pixels.
const (
	svgLeft   = 120 // the lanes' names
	svgWidth  = 1000
	svgLane   = 34
	svgTop    = 40
	svgBottom = 40
)

// laneOrder is the packet path, bottom up: the lanes are drawn in this
// order, then every other process in slot order.
var laneOrder = []string{"nic", "driver", "pf", "ip", "tcp", "udp", "syscall"}

func laneRank(name string) int {
	if i := slices.Index(laneOrder, name); i >= 0 {
		return i
	}
	return len(laneOrder)
}

// Window picks span of time to draw: it starts shortly before the put of
// the last message of type t from process from whose span ends within the
// snapshots, so the picture shows one whole request among its neighbours.
// It returns the window's start (a counter reading), or false if there is
// no such message.
func Window(msgs []Message, names map[int]string, from string, t ipc.Type, span time.Duration, hz float64) (uint64, bool) {
	var last uint64
	for _, m := range msgs {
		last = max(last, m.Take)
	}
	ticks := uint64(span.Seconds() * hz)
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if names[m.From] == from && m.Type == t && m.Put+ticks <= last {
			return m.Put - ticks/20, true
		}
	}
	return 0, false
}

// WriteSVG draws the span of time from start as lanes, one per process
// (the packet path's first, bottom up): its handlings (dark), its sleeps (light), and every message
// as a line from its put in the sender's lane to its take in the
// receiver's. hz is the counter's rate.
func WriteSVG(w io.Writer, snaps []trace.Snapshot, msgs []Message, hz float64, start uint64, span time.Duration) error {
	snaps = slices.Clone(snaps)
	slices.SortFunc(snaps, func(a, b trace.Snapshot) int {
		if c := cmp.Compare(laneRank(a.Process), laneRank(b.Process)); c != 0 {
			return c
		}
		return a.Slot - b.Slot
	})
	lane := map[int]int{}
	for i, s := range snaps {
		lane[s.Slot] = i
	}
	end := start + uint64(span.Seconds()*hz)
	x := func(c uint64) float64 {
		c = min(max(c, start), end)
		return svgLeft + float64(c-start)/float64(end-start)*svgWidth
	}
	y := func(slot int) float64 { return svgTop + float64(lane[slot])*svgLane }
	height := svgTop + len(snaps)*svgLane + svgBottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n",
		svgLeft+svgWidth+20, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">newtsim trace: %v from the recorded window (dark: handling a message; light: asleep; lines: messages, put to take)</text>`+"\n",
		svgLeft, span)
	for _, s := range snaps {
		ly := y(s.Slot)
		fmt.Fprintf(&b, `<text x="8" y="%.0f">%s</text>`+"\n", ly+svgLane/2+4, html.EscapeString(s.Process))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#ddd"/>`+"\n", svgLeft, ly+svgLane/2, svgLeft+svgWidth, ly+svgLane/2)
		var begin, sleep uint64
		for _, e := range s.Events {
			switch e.Kind {
			case trace.Begin:
				begin = e.TSC
			case trace.End:
				if begin != 0 && e.TSC > start && begin < end {
					fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%d" fill="#1f4e8c"><title>%s %.1f us</title></rect>`+"\n",
						x(begin), ly+6, max(x(e.TSC)-x(begin), 0.8), svgLane-12, html.EscapeString(ipc.Type(e.Type).String()), float64(e.TSC-begin)/hz*1e6)
				}
				begin = 0
			case trace.Sleep:
				sleep = e.TSC
			case trace.Wake:
				if sleep != 0 && e.TSC > start && sleep < end {
					fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%d" fill="#cfe0f5"/>`+"\n",
						x(sleep), ly+12, x(e.TSC)-x(sleep), svgLane-24)
				}
				sleep = 0
			}
		}
	}
	for _, m := range msgs {
		if m.Take < start || m.Put > end || slices.Contains(Skipped, m.Type) {
			continue
		}
		if _, ok := lane[m.From]; !ok {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#d2691e" stroke-width="1"><title>%s: queued %.1f us, wake-up %.1f us</title></line>`+"\n",
			x(m.Put), y(m.From)+svgLane/2, x(m.Take), y(m.To)+svgLane/2, html.EscapeString(m.Type.String()),
			float64(m.Queued())/hz*1e6, float64(m.Wakeup())/hz*1e6)
	}
	// A time axis.
	ay := float64(svgTop + len(snaps)*svgLane + 10)
	fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="black"/>`+"\n", svgLeft, ay, svgLeft+svgWidth, ay)
	for i := 0; i <= 10; i++ {
		tx := svgLeft + float64(i)*svgWidth/10
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/><text x="%.0f" y="%.0f" text-anchor="middle">%.0f us</text>`+"\n",
			tx, ay, tx, ay+4, tx, ay+18, float64(i)*span.Seconds()*1e6/10)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
