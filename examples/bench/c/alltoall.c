/* alltoall.c - time per call of MPI_Alltoall (MPI_BYTE), the C counterpart of
 * `bench alltoall`: coll.c (in the baseline study) has no alltoall.
 *
 * Same method and output line as coll.c: 3 warm-up calls; calibration by
 * batches of 1, 2, 4 ... calls until one batch takes >= target/10 s (max over
 * ranks); iterations for about target seconds, clamped to [5, 1000000]; the
 * timed loop; per rank elapsed/iters, printed as max and mean over ranks.
 * count = bytes = bytes sent to each rank (the send buffer holds nranks blocks).
 *
 * Usage: mpirun -n N ./alltoall [target_seconds_per_test]   (default 0.5)
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void run(int rank, int nranks, char *sbuf, char *rbuf, long n, double target) {
    const long min_it = 5, max_it = 1000000;
    for (int i = 0; i < 3; i++)
        MPI_Alltoall(sbuf, (int)n, MPI_BYTE, rbuf, (int)n, MPI_BYTE, MPI_COMM_WORLD);

    long k = 1;
    double gel = 0;
    for (;;) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (long i = 0; i < k; i++)
            MPI_Alltoall(sbuf, (int)n, MPI_BYTE, rbuf, (int)n, MPI_BYTE, MPI_COMM_WORLD);
        double el = MPI_Wtime() - t0;
        MPI_Allreduce(&el, &gel, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (gel >= target / 10 || k >= max_it) break;
        k *= 2;
    }
    double want = gel > 0 ? target / (gel / k) : (double)max_it;
    long iters = want < min_it ? min_it : want > max_it ? max_it : (long)want;

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (long i = 0; i < iters; i++)
        MPI_Alltoall(sbuf, (int)n, MPI_BYTE, rbuf, (int)n, MPI_BYTE, MPI_COMM_WORLD);
    double us = (MPI_Wtime() - t0) * 1e6 / iters, umax = 0, usum = 0;
    MPI_Reduce(&us, &umax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Reduce(&us, &usum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("  %-10s %10ld %10ld %12.3f %12.3f %8ld\n", "alltoall", n, n, umax, usum / nranks, iters);
        fflush(stdout);
    }
}

int main(int argc, char **argv) {
    int rank, nranks;
    double target = argc > 1 ? atof(argv[1]) : 0.5;
    if (target <= 0) target = 0.5;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);

    const long sizes[] = {8, 4096, 65536}; /* bytes per destination rank */
    const long maxb = sizes[2] * nranks;
    char *sbuf = malloc(maxb), *rbuf = malloc(maxb);
    if (!sbuf || !rbuf) MPI_Abort(MPI_COMM_WORLD, 1);
    memset(sbuf, rank, maxb);
    memset(rbuf, 0, maxb);

    if (rank == 0) {
        char ver[MPI_MAX_LIBRARY_VERSION_STRING];
        int len;
        MPI_Get_library_version(ver, &len);
        char *nl = strchr(ver, '\n');
        if (nl) *nl = 0;
        printf("# library: %s\n", ver);
        printf("# ranks: %d  target_s_per_test: %.2f\n", nranks, target);
        printf("# %-10s %10s %10s %12s %12s %8s\n", "op", "count", "bytes", "max_us", "mean_us", "iters");
        fflush(stdout);
    }
    for (int i = 0; i < 3; i++) run(rank, nranks, sbuf, rbuf, sizes[i], target);

    /* check: block i of rbuf came from rank i */
    long bad = 0;
    for (int i = 0; i < nranks; i++)
        if (rbuf[(long)i * sizes[2]] != (char)i) bad++;
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0 && bad)
        printf("# WARNING: alltoall check failed on %ld blocks\n", bad);

    free(sbuf);
    free(rbuf);
    MPI_Finalize();
    return 0;
}
