package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/runtime/mpi"
)

// gather collects the owned cells of fields from every rank onto rank 0 and
// returns them there as global arrays, nx per row, row 0 in the south (nil on
// the other ranks). blocks[r] is rank r's block.
//
// Each rank sends its block as one contiguous run (field after field, row
// after row); Gatherv lands the runs one after the other on rank 0, which
// knows every block's shape and copies the rows into place.
func gather(c *mpi.Comm, blocks []*block, fields ...[]float64) ([][]float64, error) {
	b := blocks[c.Rank()]
	send := make([]float64, 0, len(fields)*b.w*b.h)
	for _, f := range fields {
		for r := range b.h {
			send = append(send, f[b.at(r, 0):b.at(r, 0)+b.w]...)
		}
	}
	var recv []float64
	var counts, displs []int
	if c.Rank() == 0 {
		total := 0
		for _, br := range blocks {
			counts = append(counts, len(fields)*br.w*br.h)
			displs = append(displs, total)
			total += counts[len(counts)-1]
		}
		recv = make([]float64, total)
	}
	if err := collectives.Gatherv(c, send, recv, counts, displs, 0); err != nil {
		return nil, err
	}
	if c.Rank() != 0 {
		return nil, nil
	}
	out := make([][]float64, len(fields))
	for k := range out {
		out[k] = make([]float64, b.nx*b.ny)
	}
	for rank, br := range blocks {
		run := recv[displs[rank]:]
		for k := range fields {
			for r := range br.h {
				copy(out[k][(br.rows.lo+r)*br.nx+br.cols.lo:], run[:br.w])
				run = run[br.w:]
			}
		}
	}
	return out, nil
}

// total returns the sum of xs with Neumaier's compensated summation, which
// carries the rounding error of each addition along: the result is nearly
// exact, and always the same for the same xs in the same order.
func total(xs []float64) float64 {
	var s, comp float64
	for _, x := range xs {
		t := s + x
		if math.Abs(s) >= math.Abs(x) {
			comp += (s - t) + x
		} else {
			comp += (x - t) + s
		}
		s = t
	}
	return s + comp
}

// checksum returns the SHA-256, in hex, of the bits of T and then Q: two
// runs print the same checksum exactly when their final fields are bitwise
// the same (barring a hash collision), whatever their numbers of ranks.
func checksum(T, Q []float64) string {
	b := make([]byte, 0, 8*(len(T)+len(Q)))
	for _, f := range [][]float64{T, Q} {
		for _, v := range f {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Pictures. Every frame uses one palette: tempLevels colours of the
// temperature scale, each also blended towards white at cloudLevels levels of
// cloud, then the colours of the frame itself. Pixels index it directly, so
// no colour quantisation is needed and the GIF compresses well.
const (
	tempLevels  = 48
	cloudLevels = 5
	tempMin     = -20.0 // °C at the bottom of the colour scale
	tempMax     = 30.0
)

// Palette indices of the frame's own colours, after the map's.
const (
	colBackground = tempLevels*cloudLevels + iota
	colText
	colRankLine
)

var palette = func() color.Palette {
	// Colour stops of the temperature scale, from tempMin to tempMax.
	stops := [][3]float64{
		{70, 20, 110}, {45, 70, 190}, {60, 150, 220}, {110, 200, 170},
		{200, 220, 90}, {245, 160, 50}, {200, 40, 35},
	}
	cloud := [cloudLevels]float64{0, 0.25, 0.45, 0.65, 0.82}
	p := make(color.Palette, 0, colRankLine+1)
	for _, a := range cloud {
		for i := range tempLevels {
			f := float64(i) / (tempLevels - 1) * float64(len(stops)-1)
			k := min(int(f), len(stops)-2)
			f -= float64(k)
			var rgb [3]uint8
			for ch := range rgb {
				v := stops[k][ch]*(1-f) + stops[k+1][ch]*f
				rgb[ch] = uint8(v*(1-a) + 250*a)
			}
			p = append(p, color.RGBA{rgb[0], rgb[1], rgb[2], 255})
		}
	}
	return append(p,
		color.RGBA{18, 22, 34, 255},    // background
		color.RGBA{235, 235, 235, 255}, // text
		color.RGBA{20, 20, 20, 255},    // lines between the ranks' blocks
	)
}()

// colourOf returns the palette index for temperature tk (K) under cloudiness cl.
func colourOf(tk, cl float64) uint8 {
	f := (tk - celsius - tempMin) / (tempMax - tempMin)
	i := min(max(int(f*tempLevels), 0), tempLevels-1)
	k := min(int(cl*cloudLevels), cloudLevels-1)
	return uint8(k*tempLevels + i)
}

// frameLayout gives the geometry of a frame for an nx × ny grid: map scale
// (pixels per cell), text scale, image size and the map's top-left corner.
type frameLayout struct {
	scale, ts     int
	width, height int
	mapX, mapY    int
}

func layoutFrame(nx, ny int) frameLayout {
	var l frameLayout
	l.scale = min(max(640/nx, 1), 4)
	l.width = max(nx*l.scale, 420)
	l.ts = 1
	if l.width >= 560 {
		l.ts = 2
	}
	l.mapX, l.mapY = (l.width-nx*l.scale)/2, 10*l.ts
	l.height = l.mapY + ny*l.scale + 28*l.ts
	return l
}

// A snapshot is what one frame shows.
type snapshot struct {
	T, Q       []float64 // global fields, row 0 south
	nx, ny     int
	dims       []int // ranks along rows and columns, drawn as dashed lines
	day        float64
	step       int
	ranks      int
	maxWindMPS float64
}

// render draws s: a title line, the map (north up, temperature coloured,
// clouds whitened, the ranks' blocks outlined) and the legend.
func render(s snapshot) *image.Paletted {
	l := layoutFrame(s.nx, s.ny)
	img := image.NewPaletted(image.Rect(0, 0, l.width, l.height), palette)
	draw.Draw(img, img.Bounds(), image.NewUniform(palette[colBackground]), image.Point{}, draw.Src)

	for j := range s.ny {
		py := l.mapY + (s.ny-1-j)*l.scale // north at the top
		for i := range s.nx {
			c := colourOf(s.T[j*s.nx+i], cloudiness(s.Q[j*s.nx+i], s.T[j*s.nx+i]))
			px := l.mapX + i*l.scale
			for yy := py; yy < py+l.scale; yy++ {
				row := img.Pix[yy*img.Stride+px : yy*img.Stride+px+l.scale]
				for k := range row {
					row[k] = c
				}
			}
		}
	}
	// Dashed lines where one rank's block meets the next.
	for k := 1; k < s.dims[1]; k++ {
		x := l.mapX + split(s.nx, s.dims[1], k).lo*l.scale
		for y := l.mapY; y < l.mapY+s.ny*l.scale; y++ {
			if (y/3)%2 == 0 {
				img.SetColorIndex(x, y, colRankLine)
			}
		}
	}
	for k := 1; k < s.dims[0]; k++ {
		y := l.mapY + (s.ny-split(s.ny, s.dims[0], k).lo)*l.scale
		for x := l.mapX; x < l.mapX+s.nx*l.scale; x++ {
			if (x/3)%2 == 0 {
				img.SetColorIndex(x, y, colRankLine)
			}
		}
	}

	ts := l.ts
	text(img, 4*ts, 2*ts, ts, "GORUN WEATHER")
	stamp := fmt.Sprintf("DAY %.2f  STEP %d  WIND %.0f M/S", s.day, s.step, s.maxWindMPS)
	text(img, l.width-4*ts-textWidth(stamp, ts), 2*ts, ts, stamp)

	// Legend: the temperature scale with a tick every 10 °C, then the clouds.
	top := l.mapY + s.ny*l.scale + 3*ts
	barX, barW, barH := 4*ts, l.width/2, 6*ts
	for x := range barW {
		tk := celsius + tempMin + (float64(x)+0.5)/float64(barW)*(tempMax-tempMin)
		for y := top; y < top+barH; y++ {
			img.SetColorIndex(barX+x, y, colourOf(tk, 0))
		}
	}
	for t := tempMin; t <= tempMax; t += 10 {
		x := barX + int((t-tempMin)/(tempMax-tempMin)*float64(barW-1))
		label := fmt.Sprintf("%.0f", t)
		w := textWidth(label, ts)
		text(img, min(max(x-w/2, 0), l.width-w), top+barH+2*ts, ts, label)
	}
	text(img, barX, top+barH+11*ts, ts, "TEMPERATURE (°C)")

	cloudX := barX + barW + 10*ts
	for k := range cloudLevels {
		for x := k * 5 * ts; x < (k+1)*5*ts; x++ {
			for y := top; y < top+barH; y++ {
				img.SetColorIndex(cloudX+x, y, colourOf(celsius+5, float64(k)/cloudLevels))
			}
		}
	}
	text(img, cloudX, top+barH+2*ts, ts, "CLOUD")
	text(img, cloudX, top+barH+11*ts, ts, fmt.Sprintf("- - %d RANKS, %dX%d BLOCKS", s.ranks, s.dims[1], s.dims[0]))
	return img
}

// A movie writes frames as PNG files and keeps them for the animated GIF.
type movie struct {
	dir    string
	frames []*image.Paletted
}

func newMovie(dir string) (*movie, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &movie{dir: dir}, nil
}

// add writes img as the next frame, frame-NNNN.png.
func (m *movie) add(img *image.Paletted) error {
	name := filepath.Join(m.dir, fmt.Sprintf("frame-%04d.png", len(m.frames)))
	m.frames = append(m.frames, img)
	return writeFile(name, func(f *os.File) error { return png.Encode(f, img) })
}

// finish writes every frame into weather.gif, which loops forever.
func (m *movie) finish() (string, error) {
	name := filepath.Join(m.dir, "weather.gif")
	if len(m.frames) == 0 {
		return name, nil
	}
	g := &gif.GIF{Image: m.frames, LoopCount: 0}
	for range m.frames {
		g.Delay = append(g.Delay, 12) // hundredths of a second
	}
	g.Delay[len(g.Delay)-1] = 150 // pause on the last frame
	b := m.frames[0].Bounds()
	g.Config = image.Config{ColorModel: palette, Width: b.Dx(), Height: b.Dy()}
	return name, writeFile(name, func(f *os.File) error { return gif.EncodeAll(f, g) })
}

func writeFile(name string, write func(*os.File) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return f.Close()
}

// A tiny bitmap font, 5 × 7 pixels per character, enough for the captions.
var font = map[rune][7]string{
	'0': {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5': {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6': {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8': {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C': {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D': {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G': {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I': {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J': {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L': {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N': {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O': {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q': {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S': {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U': {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V': {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X': {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y': {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z': {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
	',': {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
	'.': {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	'-': {".....", ".....", ".....", ".###.", ".....", ".....", "....."},
	'(': {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')': {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'/': {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."},
	':': {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	'=': {".....", ".....", "#####", ".....", "#####", ".....", "....."},
	'°': {".##..", "#..#.", ".##..", ".....", ".....", ".....", "....."},
}

// textWidth is the width in pixels of s drawn at scale ts.
func textWidth(s string, ts int) int { return len([]rune(s)) * 6 * ts }

// text draws s with its top-left corner at (x, y), each font pixel ts × ts
// pixels. Characters without a glyph (space, lower case) are left blank.
func text(img *image.Paletted, x, y, ts int, s string) {
	for _, ch := range s {
		for gy, line := range font[ch] {
			for gx, p := range line {
				if p != '#' {
					continue
				}
				for dy := range ts {
					for dx := range ts {
						img.SetColorIndex(x+gx*ts+dx, y+gy*ts+dy, colText)
					}
				}
			}
		}
		x += 6 * ts
	}
}

// An observer takes the snapshots: every rank calls snapshot together, rank 0
// checks the totals, prints a line and draws a frame.
type observer struct {
	comm   *mpi.Comm
	blocks []*block
	dims   []int
	o      options

	T, Q        []float64 // the last fields gathered (rank 0)
	heat, water float64   // their totals at the start (rank 0)
	drift       float64   // the largest relative change of a total so far
	movie       *movie
}

// snapshot gathers T and Q after step n at time t (s), checks that the totals
// of T and q are conserved and draws a frame. maxWind is the largest wind
// speed of the step (m/s). The time spent goes to tm.Output.
func (ob *observer) snapshot(T, Q []float64, n int, t, maxWind float64, tm *timing) error {
	start := mpi.Wtime()
	defer func() { tm.Output += mpi.Wtime() - start }()
	g, err := gather(ob.comm, ob.blocks, T, Q)
	if err != nil || ob.comm.Rank() != 0 {
		return err
	}
	ob.T, ob.Q = g[0], g[1]
	heat, water := total(ob.T), total(ob.Q)
	if n == 0 {
		ob.heat, ob.water = heat, water
	}
	dh, dw := heat/ob.heat-1, water/ob.water-1
	ob.drift = max(ob.drift, math.Abs(dh), math.Abs(dw))
	if ob.o.log != nil {
		fmt.Fprintf(ob.o.log, "step %5d  day %5.2f  max wind %4.1f m/s  drift of total heat %+.1e, water %+.1e\n",
			n, t/86400, maxWind, dh, dw)
	}
	if ob.o.out == "" {
		return nil
	}
	if ob.movie == nil {
		if ob.movie, err = newMovie(ob.o.out); err != nil {
			return err
		}
	}
	return ob.movie.add(render(snapshot{
		T: ob.T, Q: ob.Q, nx: ob.o.nx, ny: ob.o.ny, dims: ob.dims,
		day: t / 86400, step: n, ranks: ob.comm.Size(), maxWindMPS: maxWind,
	}))
}

// finish writes the GIF and collects every rank's timing on rank 0.
func (ob *observer) finish(tm timing) (*result, error) {
	res := &result{T: ob.T, Q: ob.Q, drift: ob.drift}
	if ob.movie != nil {
		var err error
		if res.gif, err = ob.movie.finish(); err != nil {
			return nil, err
		}
		if ob.o.log != nil {
			fmt.Fprintf(ob.o.log, "wrote %d frames and %s\n", len(ob.movie.frames), res.gif)
		}
	}
	var all []float64
	if ob.comm.Rank() == 0 {
		all = make([]float64, 4*ob.comm.Size())
	}
	if err := collectives.Gather(ob.comm, []float64{tm.Compute, tm.Halo, tm.Reduce, tm.Output}, all, 0); err != nil {
		return nil, err
	}
	for k := 0; k < len(all); k += 4 {
		res.times = append(res.times, timing{all[k], all[k+1], all[k+2], all[k+3]})
	}
	return res, nil
}

// printTimings prints where each rank's time went.
func printTimings(w io.Writer, times []timing) {
	fmt.Fprintf(w, "\n%4s  %10s  %12s  %12s  %10s\n", "rank", "compute s", "halo wait s", "allreduce s", "output s")
	for r, t := range times {
		fmt.Fprintf(w, "%4d  %10.3f  %12.3f  %12.3f  %10.3f\n", r, t.Compute, t.Halo, t.Reduce, t.Output)
	}
}
