package rendezvous

// Environment variables the launcher sets for every rank and package mpi
// reads in Init. They are the whole contract between a launcher and a rank:
// any launcher that sets them (and serves the rendezvous protocol) can start
// gorun programs.
const (
	// EnvRank is the rank of the process in the world communicator.
	EnvRank = "GORUN_RANK"
	// EnvSize is the number of ranks in the job.
	EnvSize = "GORUN_SIZE"
	// EnvLocalRank is the rank among the job's processes on this host.
	EnvLocalRank = "GORUN_LOCAL_RANK"
	// EnvLocalSize is the number of the job's processes on this host.
	EnvLocalSize = "GORUN_LOCAL_SIZE"
	// EnvHost names the host the launcher placed this rank on. Ranks with
	// the same EnvHost share memory.
	EnvHost = "GORUN_HOST"
	// EnvJob is the job's id: short, random, unique among running jobs. It
	// names the job's shared-memory files (/dev/shm/gorun-<job>-…).
	EnvJob = "GORUN_JOB"
	// EnvAddr is the rendezvous server's address, host:port.
	EnvAddr = "GORUN_RENDEZVOUS"
	// EnvToken is the job's secret token, hex encoded. Ranks prove it to the
	// rendezvous and to each other.
	EnvToken = "GORUN_TOKEN"
	// EnvNet is a network (CIDR, e.g. 10.0.0.0/24) in which each rank
	// listens and publishes its TCP address (gorun --net). Without it a rank
	// uses the address of its interface that routes to the launcher.
	EnvNet = "GORUN_NET"
	// EnvDebug lists debugging outputs, comma separated: "routes" makes
	// each rank print the transport it uses for every peer.
	EnvDebug = "GORUN_DEBUG"
	// EnvTransport forces one transport between ranks for comparison
	// ("tcp"); empty means the best available.
	EnvTransport = "GORUN_TRANSPORT"
)
