package launcher

import (
	"bufio"
	"io"
	"os"
	"sync"
)

// maxLine is the longest piece of a line forwarded at once; longer lines
// are cut into maxLine pieces, each ended with a newline.
const maxLine = 64 << 10

// lineSink is one destination of whole lines (gorun's stdout, stderr or a
// per-rank file). Writers share it; each line is one Write under mu, so the
// lines of different ranks never mix.
type lineSink struct {
	mu  sync.Mutex // guards w and err; held for one whole line
	w   io.Writer
	err error // first write error; later lines are dropped
}

// writeLine writes line, which must end with a newline, in one Write.
// After a write error it discards lines, so that ranks writing to a closed
// terminal are not blocked.
func (s *lineSink) writeLine(line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	_, s.err = s.w.Write(line)
}

// forwardLines copies r to dst line by line, prefixing each line (or piece
// of a long line) with prefix, until r reports EOF or any error, such as
// the read deadline the job sets once every rank is reaped.
func forwardLines(r *os.File, dst *lineSink, prefix string) {
	br := bufio.NewReaderSize(r, maxLine)
	buf := make([]byte, 0, len(prefix)+128)
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			buf = append(buf[:0], prefix...)
			buf = append(buf, chunk...)
			if buf[len(buf)-1] != '\n' {
				buf = append(buf, '\n')
			}
			dst.writeLine(buf)
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}
