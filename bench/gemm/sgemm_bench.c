/*
 * Times OpenBLAS cblas_sgemm (row-major, C = A·B, no transposes) for the sizes given on the command line and
 * prints one line per size: "M N K GFLOP/s CPU-GFLOP/s", medians over the repeats (2·M·N·K FLOPs per call).
 * GFLOP/s is by wall clock; CPU-GFLOP/s divides by the process's CPU time and multiplies by the thread count,
 * the rate had each thread a core to itself, which stays meaningful when other processes share the cores.
 * Usage: sgemm_bench THREADS REPEATS M N K [M N K ...]
 * Build: gcc -O2 sgemm_bench.c -o sgemm_bench -lopenblas
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern void openblas_set_num_threads(int threads);
extern char *openblas_get_config(void);

static double clock_seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double now_seconds(void) {
    return clock_seconds(CLOCK_MONOTONIC);
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

static float *random_matrix(long count, unsigned *state) {
    float *m = malloc(count * sizeof(float));
    for (long i = 0; i < count; i++) {
        *state = *state * 1664525u + 1013904223u;
        m[i] = (float) (*state >> 8) / (float) (1u << 24) * 2.0f - 1.0f;
    }
    return m;
}

int main(int argc, char **argv) {
    if (argc < 6 || (argc - 3) % 3 != 0) {
        fprintf(stderr, "usage: %s THREADS REPEATS M N K [M N K ...]\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]), repeats = atoi(argv[2]);
    openblas_set_num_threads(threads);
    fprintf(stderr, "sgemm_bench: %s, %d threads\n", openblas_get_config(), threads);
    unsigned state = 12345;
    double *rates = malloc(sizeof(double) * (repeats > 0 ? repeats : 1));
    double *cpu_rates = malloc(sizeof(double) * (repeats > 0 ? repeats : 1));
    for (int arg = 3; arg + 2 < argc; arg += 3) {
        int m = atoi(argv[arg]), n = atoi(argv[arg + 1]), k = atoi(argv[arg + 2]);
        float *a = random_matrix((long) m * k, &state), *b = random_matrix((long) k * n, &state);
        float *c = random_matrix((long) m * n, &state);
        double flops = 2.0 * m * n * k;
        /* Warm up for at least a quarter second so that caches, page faults and thread start are paid. */
        double warm = now_seconds();
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
        } while (now_seconds() - warm < 0.25);
        /* Each repeat runs enough calls to last about 50 ms, so that one timing is not clock noise. */
        int calls = (int) (0.05 / (flops / 50e9)) + 1;
        for (int r = 0; r < repeats; r++) {
            double start = now_seconds(), cpu_start = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
            for (int i = 0; i < calls; i++) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
            }
            rates[r] = flops * calls / (now_seconds() - start) * 1e-9;
            cpu_rates[r] = flops * calls * threads / (clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu_start) * 1e-9;
        }
        qsort(rates, repeats, sizeof(double), compare_doubles);
        qsort(cpu_rates, repeats, sizeof(double), compare_doubles);
        printf("%d %d %d %.1f %.1f\n", m, n, k, rates[repeats / 2], cpu_rates[repeats / 2]);
        fflush(stdout);
        free(a);
        free(b);
        free(c);
    }
    free(rates);
    free(cpu_rates);
    return 0;
}
