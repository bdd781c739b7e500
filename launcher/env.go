package launcher

import (
	"slices"
	"strconv"
	"strings"

	"github.com/gorun-hpc/gorun/launcher/rendezvous"
)

// launcherVars are the variables the launcher sets for every rank. Values
// inherited from gorun's own environment (a gorun started by a rank) are
// dropped, and -x may not set them.
var launcherVars = []string{
	rendezvous.EnvRank, rendezvous.EnvSize, rendezvous.EnvLocalRank,
	rendezvous.EnvLocalSize, rendezvous.EnvHost, rendezvous.EnvJob,
	rendezvous.EnvAddr, rendezvous.EnvToken,
}

// jobEnv returns the environment shared by every rank: base without the
// launcher's variables, with the -x specs applied. A spec "NAME=VALUE" sets
// NAME; a bare "NAME" copies NAME's value from base (so that it reaches
// ranks on other hosts too) and is ignored when base does not set it.
func jobEnv(base, specs []string) ([]string, error) {
	env := make([]string, 0, len(base)+len(specs)+len(launcherVars))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(launcherVars, name) {
			env = append(env, kv)
		}
	}
	for _, spec := range specs {
		name, value, hasValue := strings.Cut(spec, "=")
		if name == "" || strings.ContainsRune(spec, 0) {
			return nil, usageErrorf(nil, "-x %q: want NAME or NAME=VALUE", spec)
		}
		if slices.Contains(launcherVars, name) {
			return nil, usageErrorf(nil, "-x %s: gorun sets %s for every rank itself", spec, name)
		}
		if !hasValue {
			v, ok := lookupEnv(base, name)
			if !ok {
				continue
			}
			value = v
		}
		env = setEnv(env, name, value)
	}
	return env, nil
}

// lookupEnv returns the value of the last entry for name in env.
func lookupEnv(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if n, v, _ := strings.Cut(env[i], "="); n == name {
			return v, true
		}
	}
	return "", false
}

// setEnv replaces every entry for name in env by name=value, or appends it.
func setEnv(env []string, name, value string) []string {
	env = slices.DeleteFunc(env, func(kv string) bool {
		n, _, _ := strings.Cut(kv, "=")
		return n == name
	})
	return append(env, name+"="+value)
}

// rseqOff is the glibc tunable that keeps glibc from registering
// restartable sequences (rseq) for the threads of a rank.
//
// With rseq registered, the kernel updates each thread's rseq area on
// every return to user space after a context switch. A waiting rank on a
// host with more ranks than cores is switched in and out every microsecond
// or two (it yields between looks), and that bookkeeping (the kernel's
// __rseq_handle_notify_resume with its user-memory reads and writes) took
// about 4% of the CPU in an 8-rank token ring on 2 cores: 0.966 of the hop
// time without it, paired median of 24 alternating rounds. Go does not use
// rseq; glibc only uses it to speed up sched_getcpu. It matters only for
// ranks linked with glibc (a Go program that uses cgo, as net does when a C
// compiler is present); a static binary ignores the variable.
const rseqOff = "glibc.pthread.rseq=0"

// withRseqOff returns env with rseqOff added to GLIBC_TUNABLES, unless
// GLIBC_TUNABLES already sets glibc.pthread.rseq (the user's choice
// stands). env is not modified.
func withRseqOff(env []string) []string {
	const name = "GLIBC_TUNABLES"
	v, ok := lookupEnv(env, name)
	switch {
	case !ok || v == "":
		v = rseqOff
	case slices.ContainsFunc(strings.Split(v, ":"), func(t string) bool {
		return strings.HasPrefix(t, "glibc.pthread.rseq=")
	}):
		return env
	default:
		v += ":" + rseqOff
	}
	return setEnv(slices.Clone(env), name, v)
}

// rankEnv is the identity of one rank in its environment.
type rankEnv struct {
	rank, size           int
	localRank, localSize int
	host, job, addr      string
	token                string // hex
}

// environ returns shared extended with e's variables; shared is not
// modified.
func (e rankEnv) environ(shared []string) []string {
	env := make([]string, len(shared), len(shared)+len(launcherVars))
	copy(env, shared)
	return append(env,
		rendezvous.EnvRank+"="+strconv.Itoa(e.rank),
		rendezvous.EnvSize+"="+strconv.Itoa(e.size),
		rendezvous.EnvLocalRank+"="+strconv.Itoa(e.localRank),
		rendezvous.EnvLocalSize+"="+strconv.Itoa(e.localSize),
		rendezvous.EnvHost+"="+e.host,
		rendezvous.EnvJob+"="+e.job,
		rendezvous.EnvAddr+"="+e.addr,
		rendezvous.EnvToken+"="+e.token,
	)
}
