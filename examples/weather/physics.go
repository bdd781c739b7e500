package main

import "math"

// The model: temperature T (kelvin) and humidity q (g/kg) carried by a wind
// and mixed by diffusion on a channel of the mid-latitudes, periodic from west
// to east, with walls in the south and the north:
//
//	∂T/∂t + ∇·(u T) = κ ∇²T        ∂q/∂t + ∇·(u q) = κ ∇²q
//
// The wind u = (−∂ψ/∂y, ∂ψ/∂x) comes from a streamfunction ψ: a jet stream
// blowing east along the middle of the channel, plus cyclones and
// anticyclones that drift east and pulse in strength. Built from ψ, the wind
// has no divergence, so a uniform field stays uniform.
//
// The scheme is in flux form: every cell changes by what flows through its
// four faces, and each face's flux is computed from the same numbers by the
// two cells it separates. What leaves one cell enters its neighbour, so the
// totals of T and q stay constant up to rounding.

// Physical constants of the model.
const (
	lengthX = 20000e3 // channel length, west to east (m)
	lengthY = 10000e3 // channel width, south to north (m)
	kappa   = 1e5     // eddy diffusivity (m²/s)
	cfl     = 0.45    // fraction of the stable time step used

	jetSpeed = 25.0           // m/s at the jet's core
	jetWidth = 0.12 * lengthY // m
	celsius  = 273.15
)

// A vortex is one cyclone (positive strength: anticlockwise) or anticyclone.
type vortex struct {
	x0, y0 float64 // starting position (m)
	drift  float64 // eastward drift (m/s)
	psi    float64 // peak streamfunction (m²/s); speed ≈ psi/radius
	radius float64 // m
	period float64 // strength pulses with this period (s)
}

var vortices = [...]vortex{
	{0.08 * lengthX, 0.56 * lengthY, 7, 2.4e7, 0.9e6, 3.0 * 86400},
	{0.25 * lengthX, 0.42 * lengthY, 9, -2.0e7, 1.0e6, 4.0 * 86400},
	{0.42 * lengthX, 0.60 * lengthY, 6, 2.2e7, 0.8e6, 2.5 * 86400},
	{0.58 * lengthX, 0.40 * lengthY, 8, -2.0e7, 0.9e6, 3.5 * 86400},
	{0.75 * lengthX, 0.57 * lengthY, 10, 2.6e7, 1.0e6, 5.0 * 86400},
	{0.90 * lengthX, 0.44 * lengthY, 5, -1.8e7, 0.8e6, 3.0 * 86400},
}

// A wind holds the velocity through each face of a block: U through the
// west face of cell (r, c) at U[r·(w+1)+c] (c = w is the east face of the
// last column), V through the south face of cell (r, c) at V[r·w+c] (r = h is
// the north face of the last row). Positive is eastward and northward.
type wind struct {
	U, V []float64

	psi, jet []float64   // scratch: ψ at the cell corners, the jet's ψ per row
	x, y     [][]float64 // scratch: each vortex's ψ factors per column and row
}

func newWind(b *block) *wind {
	wd := &wind{
		U:   make([]float64, b.h*(b.w+1)),
		V:   make([]float64, (b.h+1)*b.w),
		psi: make([]float64, (b.h+1)*(b.w+1)),
		jet: make([]float64, b.h+1),
	}
	for range vortices {
		wd.x = append(wd.x, make([]float64, b.w+1))
		wd.y = append(wd.y, make([]float64, b.h+1))
	}
	return wd
}

// update fills the wind for time t (s) and returns the largest Courant rate
// max(|U|/Δx, |V|/Δy) (1/s) and the largest speed (m/s) in the block.
//
// ψ is evaluated at the corners from global indices only (the column index
// wrapped around the periodic channel), so neighbouring blocks compute
// bitwise the same ψ, hence the same wind, on the faces they share.
func (wd *wind) update(b *block, t float64) (maxRate, maxSpeed float64) {
	dx, dy := lengthX/float64(b.nx), lengthY/float64(b.ny)
	for r := range b.h + 1 {
		y := float64(b.rows.lo+r) * dy
		// ψ of the jet u(y) = U₀·exp(−((y−Ly/2)/width)²).
		wd.jet[r] = -jetSpeed * jetWidth * math.Sqrt(math.Pi) / 2 * math.Erf((y-lengthY/2)/jetWidth)
		for k, v := range vortices {
			// Vanishing exactly on the walls, so no wind blows through them.
			f := 0.0
			if j := b.rows.lo + r; j > 0 && j < b.ny {
				f = math.Sin(math.Pi*y/lengthY) * math.Exp(-sq((y-v.y0)/v.radius))
			}
			wd.y[k][r] = f
		}
	}
	for k, v := range vortices {
		// Around the periodic channel, exp(a·(cos θ − 1)) is a bump of width radius.
		a := 2 * sq(lengthX/(2*math.Pi*v.radius))
		xc := v.x0 + v.drift*t
		strength := v.psi * (1 + 0.3*math.Sin(2*math.Pi*t/v.period))
		for c := range b.w + 1 {
			x := float64((b.cols.lo+c)%b.nx) * dx
			wd.x[k][c] = strength * math.Exp(a*(math.Cos(2*math.Pi*(x-xc)/lengthX)-1))
		}
	}
	for r := range b.h + 1 {
		row := wd.psi[r*(b.w+1) : (r+1)*(b.w+1)]
		for c := range row {
			p := wd.jet[r]
			for k := range vortices {
				p += wd.x[k][c] * wd.y[k][r]
			}
			row[c] = p
		}
	}
	// u = −∂ψ/∂y on the west faces, v = ∂ψ/∂x on the south faces.
	for r := range b.h {
		for c := range b.w + 1 {
			u := -(wd.psi[(r+1)*(b.w+1)+c] - wd.psi[r*(b.w+1)+c]) / dy
			wd.U[r*(b.w+1)+c] = u
			maxRate, maxSpeed = max(maxRate, math.Abs(u)/dx), max(maxSpeed, math.Abs(u))
		}
	}
	for r := range b.h + 1 {
		for c := range b.w {
			v := (wd.psi[r*(b.w+1)+c+1] - wd.psi[r*(b.w+1)+c]) / dx
			wd.V[r*b.w+c] = v
			maxRate, maxSpeed = max(maxRate, math.Abs(v)/dy), max(maxSpeed, math.Abs(v))
		}
	}
	return maxRate, maxSpeed
}

// timeStep returns the step (s) for the largest Courant rate in the whole
// domain: within the advection limit (cfl) and the diffusion limit.
func timeStep(maxRate float64, nx, ny int) float64 {
	dx, dy := lengthX/float64(nx), lengthY/float64(ny)
	dt := 0.25 / (kappa * (1/(dx*dx) + 1/(dy*dy)))
	if maxRate > 0 {
		dt = min(dt, cfl/maxRate)
	}
	return dt
}

// step advances one field by dt over the cells [r0, r1) × [c0, c1) of the
// block: dst = src − Δt·(divergence of the fluxes). It reads src (halo
// included) and the wind, and writes only those cells of dst.
//
// Every cell is computed by this one function with the same operations in the
// same order, whichever rank owns it and wherever the block edges fall: that
// is what makes the result bitwise independent of the number of ranks.
func step(b *block, dst, src []float64, wd *wind, dt float64, r0, r1, c0, c1 int) {
	dx, dy := lengthX/float64(b.nx), lengthY/float64(b.ny)
	tx, ty := dt/dx, dt/dy // Δt/Δ, for the Courant numbers and the update
	kx, ky := kappa/dx, kappa/dy
	for r := r0; r < r1; r++ {
		// Rows r−2 … r+2, clamped at the walls (see block.rowOff).
		s2, s1 := b.rowOff[r-2+halo], b.rowOff[r-1+halo]
		n1, n2 := b.rowOff[r+1+halo], b.rowOff[r+2+halo]
		u := wd.U[r*(b.w+1) : (r+1)*(b.w+1)]
		vs, vn := wd.V[r*b.w:(r+1)*b.w], wd.V[(r+1)*b.w:(r+2)*b.w]
		for c := c0; c < c1; c++ {
			i := b.at(r, c)
			k := c + halo
			west := flux(u[c], tx, kx, src[i-2], src[i-1], src[i], src[i+1])
			east := flux(u[c+1], tx, kx, src[i-1], src[i], src[i+1], src[i+2])
			south := flux(vs[c], ty, ky, src[s2+k], src[s1+k], src[i], src[n1+k])
			north := flux(vn[c], ty, ky, src[s1+k], src[i], src[n1+k], src[n2+k])
			dst[i] = src[i] - tx*(east-west) - ty*(north-south)
		}
	}
}

// flux returns the flux through a face with velocity vel (positive towards b)
// between cells a and b, whose outer neighbours are aa (behind a) and bb
// (beyond b); t is Δt/Δ and k is κ/Δ for the face's direction.
//
// Advection takes the value upwind of the face, corrected towards second-order
// accuracy by the van Leer limiter, which keeps the scheme from creating new
// maxima or minima (no wiggles at sharp fronts). Diffusion adds −κ·∂q/∂n.
func flux(vel, t, k, aa, a, b, bb float64) float64 {
	courant := math.Abs(vel) * t
	var face float64
	if vel >= 0 {
		face = a + 0.5*(1-courant)*vanLeer(a-aa, b-a)
	} else {
		face = b - 0.5*(1-courant)*vanLeer(bb-b, b-a)
	}
	return vel*face - k*(b-a)
}

// vanLeer is the van Leer limiter in slope form: the harmonic mean of the
// upwind and central differences when they agree in sign, else zero.
func vanLeer(up, d float64) float64 {
	if up*d <= 0 {
		return 0
	}
	return 2 * up * d / (up + d)
}

func sq(x float64) float64 { return x * x }

// Initial state and climate.

// climate returns the undisturbed temperature (K) at latitude y (m): about
// 28 °C at the southern wall, −12 °C at the northern one, with the steepest
// change (the polar front) in the middle.
func climate(y float64) float64 {
	return celsius + 8 - 20*math.Tanh((y-lengthY/2)/(0.12*lengthY))
}

// saturation returns the humidity (g/kg) at which air of temperature tk (K)
// is saturated, from the Magnus formula at 1000 hPa.
func saturation(tk float64) float64 {
	tc := tk - celsius
	return 3.8 * math.Exp(17.27*tc/(tc+237.3))
}

// initial returns T and q in global cell (i, j): the climate with the polar
// front displaced in a wave of three crests, and humid air whose own front
// lies a little further north. Between the two fronts the air holds more
// water than it can at its temperature: a band of cloud along the jet.
func initial(i, j, nx, ny int) (t, q float64) {
	x := (float64(i) + 0.5) * lengthX / float64(nx)
	y := (float64(j) + 0.5) * lengthY / float64(ny)
	wave := 0.06 * lengthY * math.Sin(3*2*math.Pi*x/lengthX)
	t = climate(y - wave)
	return t, 0.9 * saturation(climate(y-wave-0.035*lengthY))
}

// cloudiness is how far humidity q exceeds saturation at temperature tk:
// 0 means clear sky, 1 a thick cloud.
func cloudiness(q, tk float64) float64 {
	return min(max((q/saturation(tk)-1.05)/0.3, 0), 1)
}
