package loadgen

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// redrawEvery is how often at most the progress bar is redrawn.
const redrawEvery = 100 * time.Millisecond

// barWidth is the progress bar's width in characters.
const barWidth = 30

// progress draws a progress bar on a terminal, over itself with \r. A nil
// *progress draws nothing.
type progress struct {
	w        io.Writer
	total    int64         // requests to make, in Requests mode
	duration time.Duration // the run's length, in Duration mode
	start    time.Time
	last     time.Time // when the bar was last drawn
	drawn    bool
	width    int // the length of the line last drawn
}

// newProgress returns a progress bar on w for a run of total requests or of
// duration, or nil where w is not a terminal.
func newProgress(w io.Writer, total int64, duration time.Duration) *progress {
	if !isTerminal(w) {
		return nil
	}
	return &progress{w: w, total: total, duration: duration}
}

// isTerminal reports whether w is a file open on a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || f == nil {
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	tty := false
	err = rc.Control(func(fd uintptr) {
		_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		tty = err == nil
	})
	return err == nil && tty
}

// begin notes when the run began.
func (p *progress) begin(now time.Time) {
	if p != nil {
		p.start = now
	}
}

// update redraws the bar with the counts so far, unless it was drawn less
// than redrawEvery ago.
func (p *progress) update(now time.Time, completed, failed int64) {
	if p == nil || p.drawn && now.Sub(p.last) < redrawEvery {
		return
	}
	p.draw(now, completed, failed)
}

// finish draws the bar a last time and ends its line.
func (p *progress) finish(now time.Time, completed, failed int64) {
	if p == nil {
		return
	}
	p.draw(now, completed, failed)
	// The bar is a courtesy: a write that fails does not fail the run.
	_, _ = io.WriteString(p.w, "\n")
}

func (p *progress) draw(now time.Time, completed, failed int64) {
	p.last, p.drawn = now, true
	elapsed := now.Sub(p.start)
	var frac float64
	if p.total > 0 {
		frac = float64(completed+failed) / float64(p.total)
	} else if p.duration > 0 {
		frac = float64(elapsed) / float64(p.duration)
	}
	frac = min(max(frac, 0), 1)
	var rate float64
	if elapsed > 0 {
		rate = float64(completed) / elapsed.Seconds()
	}
	filled := int(frac * barWidth)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled)
	line := fmt.Sprintf("\r[%s] %3.0f%%  %d requests, %d failed, %.0f req/s, %s",
		bar, 100*frac, completed, failed, rate, elapsed.Truncate(100*time.Millisecond))
	n := len(line)
	if n < p.width {
		line += strings.Repeat(" ", p.width-n) // blank what is left of the last line
	}
	p.width = n
	_, _ = io.WriteString(p.w, line)
}
