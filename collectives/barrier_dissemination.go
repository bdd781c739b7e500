package collectives

// barrierDissemination is the dissemination barrier (Hensgen, Finkel and
// Manber): in round k every rank signals rank r+2ᵏ and waits for rank r−2ᵏ
// (mod p). After ⌈lg p⌉ rounds every rank has heard, directly or
// transitively, from every other, so none can leave before all arrived.
// Works for any p with no extra rounds.
//
// Cost: ⌈lg p⌉·α; zero-byte messages.
func barrierDissemination(k call) error {
	p, r := k.size(), k.rank()
	var none []byte
	for d := 1; d < p; d *= 2 {
		if err := sendrecv(k, none, (r+d)%p, none, (r-d+p)%p, stepBarrier); err != nil {
			return err
		}
	}
	return nil
}
