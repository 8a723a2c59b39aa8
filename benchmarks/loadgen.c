/*
 * loadgen.c - single-threaded epoll WebSocket fan-out load generator.
 *
 * Opens N subscriber WebSocket connections to ws://HOST:PORT/ws/public,
 * subscribes each to one topic, measures the server's RSS per idle
 * connection, then acts as the producer over keep-alive HTTP connections
 * (POST /api/v1/publish, B events per request) and measures, for every
 * delivered event frame, delivery latency and loss/duplication by offset.
 *
 * Build: gcc -O2 -Wall -o loadgen loadgen.c      (libc only, Linux)
 * Run:   loadgen --port 8080 --key KEY --n 1000 --mode max --duration 10
 *        loadgen --help
 *
 * Output: human-readable lines, then one line starting with "RESULT " made
 * of space-separated key=value pairs (see print_result()).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ------------------------------------------------------------------ */
/* configuration                                                       */

enum { MODE_MAX = 0, MODE_RATE = 1, MODE_IDLE = 2 };

static struct {
    const char *host;
    int port;
    const char *path;
    const char *topic;
    const char *key;
    int n;
    int batch;
    int mode;
    double rate;          /* delivered msgs/s target (events/s * N) */
    int window;
    double duration;
    int server_pid;
    int cpu;
    int src_addrs;
    int wave;
    int producers;
    double idle_s;
    double drain_s;
    double connect_timeout_s;
    double warmup_timeout_s;
    double stall_s;
    int coalesce_us;
    int handicap_ns;
    int topics;           /* >0: many-markets mode, K small topics <topic>-<j> */
    int big_every;        /* many-markets: every M-th event goes to the big topic */
    int probes;           /* idle mode: probe requests of each kind */
    const char *probe_topic;
    int verbose;
} cfg = {
    .host = "127.0.0.1",
    .port = 0,
    .path = "/ws/public",
    .topic = "trade/BENCH",
    .key = NULL,
    .n = 100,
    .batch = 10,
    .mode = MODE_MAX,
    .rate = 0,
    .window = 4,
    .duration = 5,
    .server_pid = 0,
    .cpu = -1,
    .src_addrs = 8,
    .wave = 500,
    .producers = 1,
    .idle_s = 1.0,
    .drain_s = 5.0,
    .connect_timeout_s = 120.0,
    .warmup_timeout_s = 15.0,
    .stall_s = 10.0,
    .coalesce_us = 0,
    .topics = 0,
    .big_every = 2,
    .probes = 200,
    .probe_topic = "trade/PROBE",
    .verbose = 0,
};

/* ------------------------------------------------------------------ */
/* small utilities                                                     */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* own CPU time in seconds; *sys_s (optional) gets the kernel part */
static double cpu_self_s(double *sys_s)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    if (sys_s)
        *sys_s = sys;
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + sys;
}

static void cleanup_sockets(void);

static void die(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "loadgen: FATAL: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    cleanup_sockets();
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q && n)
        die("out of memory (%zu bytes)", n);
    return q;
}

static uint64_t rng_state;
static uint32_t rng32(void)
{
    /* xorshift64*: only used for masking keys, which need not be secret */
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

static void fill_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t r = getrandom(p, len, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* fall back to the PRNG */
            for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t)rng32();
            return;
        }
        p += r;
        len -= (size_t)r;
    }
}

/* /proc/<pid>/status VmRSS in kB, -1 if unknown */
static long read_rss_kb(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* utime+stime of /proc/<pid>/stat in seconds, -1 if unknown; *user_s and
 * *sys_s (optional) get the two parts */
static double read_proc_cpu_split(int pid, double *user_s, double *sys_s)
{
    if (user_s)
        *user_s = -1;
    if (sys_s)
        *sys_s = -1;
    if (pid <= 0)
        return -1;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    /* fields after ')': state(3) ... utime(14) stime(15) */
    int field = 2;
    char *save = NULL;
    unsigned long long ut = 0, st = 0;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            ut = strtoull(tok, NULL, 10);
        else if (field == 15) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    long hz = sysconf(_SC_CLK_TCK);
    double div = (double)(hz > 0 ? hz : 100);
    if (user_s)
        *user_s = (double)ut / div;
    if (sys_s)
        *sys_s = (double)st / div;
    return (double)(ut + st) / div;
}

/* ------------------------------------------------------------------ */
/* SHA-1 and base64 (for Sec-WebSocket-Key / Sec-WebSocket-Accept)     */

typedef struct {
    uint32_t h[5];
    uint64_t len;
    uint8_t buf[64];
    size_t blen;
} sha1_ctx;

static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(sha1_ctx *c, const uint8_t *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & cc) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ cc ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & cc) | (b & d) | (cc & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ cc ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = cc;
        cc = rol32(b, 30);
        b = a;
        a = t;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
}

static void sha1_init(sha1_ctx *c)
{
    c->h[0] = 0x67452301;
    c->h[1] = 0xEFCDAB89;
    c->h[2] = 0x98BADCFE;
    c->h[3] = 0x10325476;
    c->h[4] = 0xC3D2E1F0;
    c->len = 0;
    c->blen = 0;
}

static void sha1_update(sha1_ctx *c, const void *data, size_t n)
{
    const uint8_t *p = data;
    c->len += n;
    while (n) {
        size_t take = 64 - c->blen;
        if (take > n)
            take = n;
        memcpy(c->buf + c->blen, p, take);
        c->blen += take;
        p += take;
        n -= take;
        if (c->blen == 64) {
            sha1_block(c, c->buf);
            c->blen = 0;
        }
    }
}

static void sha1_final(sha1_ctx *c, uint8_t out[20])
{
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80;
    sha1_update(c, &pad, 1);
    pad = 0;
    while (c->blen != 56)
        sha1_update(c, &pad, 1);
    uint8_t lb[8];
    for (int i = 0; i < 8; i++)
        lb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_update(c, lb, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

static void base64(const uint8_t *in, size_t n, char *out)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = 0;
}

static void ws_accept_for(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    sha1_ctx c;
    uint8_t dg[20];
    sha1_init(&c);
    sha1_update(&c, key, strlen(key));
    sha1_update(&c, guid, sizeof guid - 1);
    sha1_final(&c, dg);
    base64(dg, 20, out);
}

/* ------------------------------------------------------------------ */
/* latency histogram: log-linear, microseconds, 64 sub-buckets/octave  */

#define H_SUB_BITS 6
#define H_SUB (1 << H_SUB_BITS)
#define H_BUCKETS (H_SUB * 60)

typedef struct {
    uint64_t count[H_BUCKETS];
    uint64_t total;
    uint64_t max;
    double sum;
} hist_t;

static int h_index(uint64_t v)
{
    if (v < H_SUB)
        return (int)v;
    int k = 63 - __builtin_clzll(v); /* k >= H_SUB_BITS */
    int idx = (k - H_SUB_BITS + 1) * H_SUB + (int)((v >> (k - H_SUB_BITS)) & (H_SUB - 1));
    return idx < H_BUCKETS ? idx : H_BUCKETS - 1;
}

/* highest value that maps to bucket i */
static uint64_t h_upper(int i)
{
    if (i < H_SUB)
        return (uint64_t)i;
    int k = i / H_SUB + H_SUB_BITS - 1;
    uint64_t sub = (uint64_t)(i % H_SUB);
    uint64_t lo = (H_SUB + sub) << (k - H_SUB_BITS);
    return lo + ((uint64_t)1 << (k - H_SUB_BITS)) - 1;
}

static void h_add(hist_t *h, uint64_t us)
{
    h->count[h_index(us)]++;
    h->total++;
    h->sum += (double)us;
    if (us > h->max)
        h->max = us;
}

static uint64_t h_pct(const hist_t *h, double p)
{
    if (!h->total)
        return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->total);
    if (rank >= h->total)
        rank = h->total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < H_BUCKETS; i++) {
        seen += h->count[i];
        if (seen > rank) {
            uint64_t v = h_upper(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

/* ------------------------------------------------------------------ */
/* state                                                               */

enum { ST_IDLE = 0, ST_CONNECTING, ST_HANDSHAKE, ST_SUBSCRIBING, ST_READY, ST_DEAD };

typedef struct {
    int fd;
    uint8_t state;
    uint8_t retries;
    uint8_t mop;          /* opcode of the fragmented message being assembled */
    uint32_t evmask;      /* current epoll mask */
    char *pbuf;           /* unparsed input carried over between reads */
    uint32_t plen, pcap;
    char *obuf;           /* output not yet accepted by the kernel */
    uint32_t olen, ocap;
    char *mbuf;           /* fragmented message assembly */
    uint32_t mlen, mcap;
    int64_t first_off;
    int64_t last_off;     /* the main (big) topic; in idle mode the probe topic too */
    int64_t last_off2;    /* many-markets mode: this connection's small topic */
    char key[25];
} conn_t;

typedef struct {
    int fd;
    int busy;             /* request written or being written, response pending */
    int64_t batch;        /* batch index in flight */
    uint32_t evmask;
    char *in;
    size_t inlen, incap;
    char *out;
    size_t outlen, outoff, outcap;
} prod_t;

#define TAG_PROD 0x80000000u
#define TAG_HZ 0x40000000u
#define SCRATCH_SZ (1u << 20)
#define MAX_FRAME (SCRATCH_SZ / 2)

static conn_t *conns;
static prod_t *prods;
static int epfd = -1;
static char *scratch;
static struct sockaddr_in server_addr;
static volatile sig_atomic_t g_stop;
static int g_coalesce; /* coalescing active (measurement phase only) */
static int64_t g_handicap_ns; /* busy-wait per recv (measurement phase only) */
static int g_nconn;           /* connections: N, plus the probe subscriber in idle mode */
static int64_t *small_base;   /* many-markets: offset base per small topic, -1 unknown */
static int32_t *small_subs;   /* many-markets: subscribers per small topic */
static size_t topic_len;      /* strlen(cfg.topic) */

static struct {
    /* connection phase */
    int started, ready, inflight, dead;
    int connect_retries;
    /* offsets */
    int64_t base;               /* offset of the first event (S=1), -1 unknown */
    /* batches: index 0 is the warm-up batch, 1.. are measured */
    int64_t nsent;              /* batches sent (requests written) */
    int64_t nacked;             /* HTTP 200 responses */
    int64_t completed;          /* prefix of batches delivered to all alive sockets */
    int64_t cap;
    int64_t *send_ns;
    int32_t *done_count;
    int32_t *expect_count;      /* many-markets: frames each batch must deliver */
    uint64_t expected_measured; /* many-markets: sum of expect_count of measured batches */
    int64_t measure_from;       /* first measured batch index */
    int64_t last_complete_ns;
    int64_t last_event_ns;
    /* counters */
    uint64_t events_rx;         /* all event frames */
    uint64_t delivered;         /* event frames of measured batches */
    uint64_t gaps, gap_events, dup, unexpected, seq_mismatch, other_msgs;
    uint64_t tail_missing;
    uint64_t early_events;      /* event frames before the first publish */
    uint64_t pings, pongs_sent;
    uint64_t recvs, polls;      /* syscalls on subscriber sockets / epoll waits */
    int closed, eof, errs;
    int close_codes_printed;
    uint64_t accept_mismatch;
    uint64_t late_sends;
    int64_t max_send_lag_ns;
    hist_t hist;
    /* idle mode: probes */
    hist_t hz_hist;             /* GET /healthz, connect to full response */
    uint64_t hz_ok, hz_failed, probe_rx;
    int64_t probe_sent;
} g;

static void ev_mod(int fd, uint32_t *cur, uint32_t want, uint64_t tag)
{
    if (*cur == want)
        return;
    struct epoll_event ev = {.events = want, .data.u64 = tag};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        die("epoll_ctl MOD: %s", strerror(errno));
    *cur = want;
}

static void hard_close(int fd)
{
    struct linger lg = {1, 0}; /* RST on close: no TIME_WAIT on either side */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void cleanup_sockets(void)
{
    if (conns)
        for (int i = 0; i < g_nconn; i++)
            if (conns[i].fd >= 0) {
                hard_close(conns[i].fd);
                conns[i].fd = -1;
            }
    if (prods)
        for (int i = 0; i < cfg.producers; i++)
            if (prods[i].fd >= 0) {
                hard_close(prods[i].fd);
                prods[i].fd = -1;
            }
}

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* ------------------------------------------------------------------ */
/* batch bookkeeping                                                   */

static int alive_count(void) { return g.ready; }

static void advance_completed(int64_t now)
{
    int alive = alive_count();
    while (g.completed < g.nsent &&
           g.done_count[g.completed] >= (cfg.topics > 0 ? g.expect_count[g.completed] : alive)) {
        g.completed++;
        g.last_complete_ns = now;
    }
}

static void ensure_batch_cap(int64_t need)
{
    if (need <= g.cap)
        return;
    int64_t nc = g.cap ? g.cap : 1024;
    while (nc < need)
        nc *= 2;
    g.send_ns = xrealloc(g.send_ns, (size_t)nc * sizeof *g.send_ns);
    g.done_count = xrealloc(g.done_count, (size_t)nc * sizeof *g.done_count);
    memset(g.done_count + g.cap, 0, (size_t)(nc - g.cap) * sizeof *g.done_count);
    g.expect_count = xrealloc(g.expect_count, (size_t)nc * sizeof *g.expect_count);
    memset(g.expect_count + g.cap, 0, (size_t)(nc - g.cap) * sizeof *g.expect_count);
    g.cap = nc;
}

/* ------------------------------------------------------------------ */
/* WebSocket connection handling                                       */

static void conn_kill(conn_t *c, const char *why, int is_close)
{
    if (c->state == ST_DEAD)
        return;
    int was = c->state;
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        hard_close(c->fd);
        c->fd = -1;
    }
    c->state = ST_DEAD;
    if (was == ST_READY) {
        g.ready--;
        advance_completed(now_ns());
    } else if (was != ST_IDLE) {
        g.inflight--;
    }
    g.dead++;
    if (is_close == 1)
        g.closed++;
    else if (is_close == 2)
        g.eof++;
    else
        g.errs++;
    if (g.closed + g.eof + g.errs <= 10)
        fprintf(stderr, "loadgen: connection %ld lost (%s, state %d): %s\n",
                (long)(c - conns), is_close == 1 ? "close frame" : is_close == 2 ? "eof" : "error",
                was, why);
}

static void conn_send(conn_t *c, const void *data, size_t len)
{
    const char *p = data;
    if (c->olen == 0) {
        ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
        if (w == (ssize_t)len)
            return;
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                conn_kill(c, strerror(errno), 0);
                return;
            }
            w = 0;
        }
        p += w;
        len -= (size_t)w;
    }
    if (c->olen + len > c->ocap) {
        c->ocap = (uint32_t)(c->olen + len + 256);
        c->obuf = xrealloc(c->obuf, c->ocap);
    }
    memcpy(c->obuf + c->olen, p, len);
    c->olen += (uint32_t)len;
    ev_mod(c->fd, &c->evmask, EPOLLIN | EPOLLOUT, (uint64_t)(c - conns));
}

static void conn_flush(conn_t *c)
{
    if (c->olen) {
        ssize_t w = send(c->fd, c->obuf, c->olen, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_kill(c, strerror(errno), 0);
            return;
        }
        memmove(c->obuf, c->obuf + w, c->olen - (size_t)w);
        c->olen -= (uint32_t)w;
    }
    if (c->olen == 0)
        ev_mod(c->fd, &c->evmask, EPOLLIN, (uint64_t)(c - conns));
}

/* masked client frame */
static void ws_send_frame(conn_t *c, int opcode, const void *payload, size_t len)
{
    uint8_t hdr[14 + 256];
    uint8_t *buf = hdr, *heap = NULL;
    size_t need = 14 + len;
    if (need > sizeof hdr)
        buf = heap = xrealloc(NULL, need);
    size_t h = 0;
    buf[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        buf[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        buf[h++] = 0x80 | 126;
        buf[h++] = (uint8_t)(len >> 8);
        buf[h++] = (uint8_t)len;
    } else {
        buf[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            buf[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t m = rng32();
    uint8_t mask[4] = {(uint8_t)(m >> 24), (uint8_t)(m >> 16), (uint8_t)(m >> 8), (uint8_t)m};
    memcpy(buf + h, mask, 4);
    h += 4;
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        buf[h + i] = p[i] ^ mask[i & 3];
    conn_send(c, buf, h + len);
    free(heap);
}

static int conn_start(int i)
{
    conn_t *c = &conns[i];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket(): %s (connection %d; raise ulimit -n?)", strerror(errno), i);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cfg.src_addrs > 0) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0};
        src.sin_addr.s_addr = htonl(0x7F000002u + (uint32_t)(i % cfg.src_addrs));
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0)
            die("bind(127.0.0.%d): %s", 2 + i % cfg.src_addrs, strerror(errno));
    }
    int r = connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr);
    if (r < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        if (e == EADDRNOTAVAIL || e == EAGAIN)
            die("connect(): %s (ephemeral ports exhausted? use more --src-addrs)", strerror(e));
        return -e;
    }
    c->fd = fd;
    c->state = ST_CONNECTING;
    c->plen = 0;
    c->olen = 0;
    c->mlen = 0;
    c->first_off = c->last_off = c->last_off2 = -1;
    c->evmask = EPOLLOUT;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)i};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl ADD: %s", strerror(errno));
    g.inflight++;
    return 0;
}

/* a connection failed before it was subscribed: retry a few times */
static void conn_retry(conn_t *c, const char *why)
{
    int i = (int)(c - conns);
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        hard_close(c->fd);
        c->fd = -1;
    }
    g.inflight--;
    c->state = ST_IDLE;
    if (++c->retries > 3)
        die("connection %d failed 4 times during setup, last: %s", i, why);
    g.connect_retries++;
    if (g.connect_retries <= 5)
        fprintf(stderr, "loadgen: retrying connection %d: %s\n", i, why);
    int r = conn_start(i);
    if (r < 0)
        die("connect() for connection %d: %s", i, strerror(-r));
}

/* ---- many-markets mode: which topic event S goes to, and back ----
 * Event S (1-based, over the whole run) goes to the big topic when
 * (S-1) % M == 0 (M = --big-every); the others go round-robin to the small
 * topics: the q-th small event (0-based) to small topic q % K. */

/* -1: the big topic, else the small topic's index */
static int topic_of_seq(int64_t s)
{
    int64_t z = s - 1, m = cfg.big_every;
    if (cfg.topics <= 0 || m <= 1 || z % m == 0)
        return -1;
    int64_t q = (z / m) * (m - 1) + (z % m - 1);
    return (int)(q % cfg.topics);
}

/* index of event S within its own topic (0-based) */
static int64_t index_in_topic(int64_t s)
{
    int64_t z = s - 1, m = cfg.big_every;
    if (cfg.topics <= 0 || m <= 1)
        return z;
    if (z % m == 0)
        return z / m;
    int64_t q = (z / m) * (m - 1) + (z % m - 1);
    return q / cfg.topics;
}

/* events published to the big topic and to small topic j among S = 1..total */
static int64_t big_count(int64_t total)
{
    if (cfg.topics <= 0 || cfg.big_every <= 1)
        return total;
    return (total + cfg.big_every - 1) / cfg.big_every;
}

static int64_t small_count(int64_t total, int j)
{
    if (cfg.topics <= 0 || cfg.big_every <= 1)
        return 0;
    int64_t sm = total - big_count(total);
    return sm / cfg.topics + (j < sm % cfg.topics ? 1 : 0);
}

static int64_t parse_seq(const char *p, size_t n)
{
    const char *s = memmem(p, n, "\"seq\"", 5);
    if (!s)
        return -1;
    s += 5;
    const char *e = p + n;
    while (s < e && (*s == ' ' || *s == ':'))
        s++;
    if (s >= e || *s < '0' || *s > '9')
        return -1;
    int64_t seq = 0;
    while (s < e && *s >= '0' && *s <= '9')
        seq = seq * 10 + (*s++ - '0');
    return seq;
}

/* topic of an event frame: -1 big, >= 0 small index, -2 not one of ours */
static int parse_topic(const char *p, size_t n)
{
    const char *t = memmem(p, n, "\"topic\"", 7);
    if (!t)
        return -2;
    const char *e = p + n;
    t += 7;
    while (t < e && (*t == ' ' || *t == ':'))
        t++;
    if (t >= e || *t != '"' || (size_t)(e - t) < topic_len + 2 || memcmp(t + 1, cfg.topic, topic_len))
        return -2;
    t += 1 + topic_len;
    if (*t == '"')
        return -1;
    if (*t != '-')
        return -2;
    t++;
    int j = 0, digits = 0;
    while (t < e && *t >= '0' && *t <= '9' && digits < 9) {
        j = j * 10 + (*t++ - '0');
        digits++;
    }
    if (!digits || t >= e || *t != '"' || j >= cfg.topics)
        return -2;
    return j;
}

/* many-markets mode: one event frame.  Loss and duplicates per (connection,
 * topic) by offset; the batch (and so the latency origin) from data.seq. */
static void on_event_multi(conn_t *c, int64_t off, const char *p, size_t n, int64_t now)
{
    int ci = (int)(c - conns);
    int64_t seq = parse_seq(p, n);
    int tp = parse_topic(p, n);
    int mine = ci % cfg.topics;
    if (seq < 1 || tp == -2 || (tp >= 0 && tp != mine)) {
        g.unexpected++;
        return;
    }
    if (topic_of_seq(seq) != tp)
        g.seq_mismatch++;
    g.events_rx++;
    g.last_event_ns = now;
    int64_t m = index_in_topic(seq);
    int64_t *base = tp < 0 ? &g.base : &small_base[tp];
    if (*base < 0)
        *base = off - m;
    if (off - *base != m)
        g.seq_mismatch++;
    int64_t *last = tp < 0 ? &c->last_off : &c->last_off2;
    int64_t prev = *last < 0 ? *base - 1 : *last;
    if (off == prev + 1) {
        /* in order */
    } else if (off > prev + 1) {
        g.gaps += (uint64_t)(off - prev - 1);
        g.gap_events++;
    } else {
        g.dup++;
        return;
    }
    *last = off;
    int64_t idx = (seq - 1) / cfg.batch;
    if (idx >= g.nsent) {
        g.unexpected++;
        return;
    }
    g.done_count[idx]++;
    if (g.done_count[idx] >= g.expect_count[idx])
        advance_completed(now);
    if (idx >= g.measure_from) {
        int64_t lat = now - g.send_ns[idx];
        h_add(&g.hist, lat > 0 ? (uint64_t)(lat / 1000) : 0);
        g.delivered++;
    }
}

/* idle mode: an event on the probe subscriber (publish-to-receive probe) */
static void on_probe_event(conn_t *c, int64_t off, const char *p, size_t n, int64_t now)
{
    int64_t seq = parse_seq(p, n);
    if (seq < 1 || seq > g.nsent) {
        g.unexpected++;
        return;
    }
    if (c->last_off >= 0 && off != c->last_off + 1) {
        if (off > c->last_off + 1)
            g.gaps += (uint64_t)(off - c->last_off - 1);
        else {
            g.dup++;
            return;
        }
    }
    c->last_off = off;
    g.events_rx++;
    g.probe_rx++;
    g.last_event_ns = now;
    int64_t lat = now - g.send_ns[seq - 1];
    h_add(&g.hist, lat > 0 ? (uint64_t)(lat / 1000) : 0);
    g.delivered++;
}

static void on_event(conn_t *c, int64_t off, const char *p, size_t n, int64_t now)
{
    if (cfg.mode == MODE_IDLE) {
        if (c - conns == cfg.n)
            on_probe_event(c, off, p, n, now);
        else
            g.unexpected++; /* nothing is published to the idle topic */
        return;
    }
    if (cfg.topics > 0 && g.nsent > 0) {
        on_event_multi(c, off, p, n, now);
        return;
    }

    if (g.nsent == 0) {
        /* nothing published yet: history replayed by the server, not ours */
        g.early_events++;
        return;
    }
    g.events_rx++;
    g.last_event_ns = now;
    if (g.base < 0)
        g.base = off;
    int64_t prev = c->last_off;
    if (prev < 0) {
        c->first_off = off;
        if (off > g.base) {
            g.gaps += (uint64_t)(off - g.base);
            g.gap_events++;
        } else if (off < g.base) {
            g.unexpected++;
        }
        prev = g.base - 1;
    } else if (off == prev + 1) {
        /* in order */
    } else if (off > prev + 1) {
        g.gaps += (uint64_t)(off - prev - 1);
        g.gap_events++;
    } else {
        g.dup++;
        return;
    }
    c->last_off = off;

    int64_t rel = off - g.base;            /* 0-based event index == S-1 */
    int64_t idx = rel / cfg.batch;         /* batch index */
    if (rel < 0 || idx >= g.nsent) {
        g.unexpected++;
        return;
    }
    /* batches whose last event this socket has now passed */
    int64_t prev_done = (prev - g.base + 1) / cfg.batch;
    int64_t now_done = (rel + 1) / cfg.batch;
    if (prev_done < 0)
        prev_done = 0;
    if (now_done > g.nsent)
        now_done = g.nsent;
    for (int64_t b = prev_done; b < now_done; b++)
        g.done_count[b]++;
    if (now_done > prev_done)
        advance_completed(now);

    if (idx >= g.measure_from) {
        int64_t lat = now - g.send_ns[idx];
        h_add(&g.hist, lat > 0 ? (uint64_t)(lat / 1000) : 0);
        g.delivered++;
    }

    /* cross-check: data.seq must equal S = offset - base + 1 */
    const char *s = memmem(p, n, "\"seq\"", 5);
    if (s) {
        s += 5;
        const char *e = p + n;
        while (s < e && (*s == ' ' || *s == ':'))
            s++;
        int64_t seq = 0;
        while (s < e && *s >= '0' && *s <= '9')
            seq = seq * 10 + (*s++ - '0');
        if (seq != rel + 1)
            g.seq_mismatch++;
    } else {
        g.seq_mismatch++;
    }
}

static void on_message(conn_t *c, const char *p, size_t n, int64_t now)
{
    if (c->state == ST_SUBSCRIBING) {
        if (memmem(p, n, "\"subscribed\"", 12)) {
            c->state = ST_READY;
            g.inflight--;
            g.ready++;
            return;
        }
        if (memmem(p, n, "error", 5))
            die("subscribe answered with: %.*s", (int)(n > 300 ? 300 : n), p);
        g.other_msgs++;
        return;
    }
    const char *o = memmem(p, n, "\"offset\"", 8);
    if (!o) {
        g.other_msgs++;
        if (cfg.verbose && g.other_msgs <= 5)
            fprintf(stderr, "loadgen: non-event message: %.*s\n", (int)(n > 200 ? 200 : n), p);
        return;
    }
    const char *e = p + n;
    o += 8;
    while (o < e && (*o == ' ' || *o == ':'))
        o++;
    if (o >= e || *o < '0' || *o > '9') {
        g.other_msgs++;
        return;
    }
    int64_t off = 0;
    while (o < e && *o >= '0' && *o <= '9')
        off = off * 10 + (*o++ - '0');
    on_event(c, off, p, n, now);
}

static void on_frame(conn_t *c, int fin, int op, uint8_t *pl, size_t n, int64_t now)
{
    switch (op) {
    case 0x9: /* ping -> masked pong with the same payload */
        g.pings++;
        ws_send_frame(c, 0xA, pl, n);
        g.pongs_sent++;
        return;
    case 0xA: /* pong */
        return;
    case 0x8: {
        int code = n >= 2 ? (pl[0] << 8 | pl[1]) : 1005;
        if (g.close_codes_printed++ < 10)
            fprintf(stderr, "loadgen: server sent close frame code=%d reason=%.*s\n", code,
                    (int)(n > 2 ? (n - 2 > 120 ? 120 : n - 2) : 0), (char *)pl + 2);
        conn_kill(c, "close frame", 1);
        return;
    }
    case 0x1:
    case 0x2:
        if (fin) {
            on_message(c, (char *)pl, n, now);
            return;
        }
        c->mop = (uint8_t)op;
        c->mlen = 0;
        /* fallthrough */
    case 0x0:
        if (c->mlen + n > MAX_FRAME) {
            conn_kill(c, "fragmented message too large", 0);
            return;
        }
        if (c->mlen + n > c->mcap) {
            c->mcap = (uint32_t)(c->mlen + n + 1024);
            c->mbuf = xrealloc(c->mbuf, c->mcap);
        }
        memcpy(c->mbuf + c->mlen, pl, n);
        c->mlen += (uint32_t)n;
        if (fin && op == 0x0) {
            on_message(c, c->mbuf, c->mlen, now);
            c->mlen = 0;
        }
        return;
    default:
        conn_kill(c, "unknown opcode", 0);
    }
}

/* parse complete frames in buf; return bytes consumed */
static size_t ws_consume(conn_t *c, uint8_t *buf, size_t len, int64_t now)
{
    size_t pos = 0;
    while (len - pos >= 2 && c->state != ST_DEAD) {
        uint8_t *f = buf + pos;
        int fin = f[0] & 0x80;
        int op = f[0] & 0x0f;
        int masked = f[1] & 0x80;
        uint64_t plen = f[1] & 0x7f;
        size_t hl = 2;
        if (plen == 126) {
            if (len - pos < 4)
                break;
            plen = (uint64_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (plen == 127) {
            if (len - pos < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | f[2 + i];
            hl = 10;
        }
        if (plen > MAX_FRAME) {
            conn_kill(c, "frame too large", 0);
            return len;
        }
        size_t mo = hl;
        if (masked)
            hl += 4; /* servers must not mask, but tolerate it */
        if (len - pos < hl + plen)
            break;
        uint8_t *pl = f + hl;
        if (masked)
            for (uint64_t i = 0; i < plen; i++)
                pl[i] ^= f[mo + (i & 3)];
        on_frame(c, fin, op, pl, (size_t)plen, now);
        pos += hl + plen;
    }
    return pos;
}

static void send_handshake(conn_t *c)
{
    uint8_t raw[16];
    fill_random(raw, sizeof raw);
    base64(raw, 16, c->key);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s:%d\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n",
                     cfg.path, cfg.host, cfg.port, c->key);
    c->state = ST_HANDSHAKE;
    ev_mod(c->fd, &c->evmask, EPOLLIN, (uint64_t)(c - conns));
    conn_send(c, req, (size_t)n);
}

static const char *find_header(const char *hdr, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = hdr; p + nl < hdr + n; p++) {
        if ((p == hdr || p[-1] == '\n') && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            p += nl + 1;
            while (*p == ' ' || *p == '\t')
                p++;
            return p;
        }
    }
    return NULL;
}

/* returns bytes of the handshake response consumed, 0 if incomplete */
static size_t handle_handshake(conn_t *c, char *buf, size_t len)
{
    char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) {
        if (len > 8192)
            conn_retry(c, "oversized handshake response");
        return 0;
    }
    size_t hl = (size_t)(end - buf) + 4;
    if (len < 12 || strncmp(buf, "HTTP/1.1 101", 12) != 0)
        die("WebSocket upgrade refused: %.*s", (int)(hl > 400 ? 400 : hl), buf);
    const char *acc = find_header(buf, hl, "Sec-WebSocket-Accept");
    char want[29];
    ws_accept_for(c->key, want);
    if (!acc || strncmp(acc, want, 28) != 0)
        die("bad Sec-WebSocket-Accept (want %s): %.*s", want, (int)(hl > 400 ? 400 : hl), buf);
    c->state = ST_SUBSCRIBING;
    char sub[512];
    int ci = (int)(c - conns), n;
    if (cfg.mode == MODE_IDLE && ci == cfg.n)
        n = snprintf(sub, sizeof sub, "{\"op\":\"subscribe\",\"args\":[\"%s\"],\"req_id\":\"1\"}",
                     cfg.probe_topic);
    else if (cfg.topics > 0)
        n = snprintf(sub, sizeof sub,
                     "{\"op\":\"subscribe\",\"args\":[\"%s\",\"%s-%d\"],\"req_id\":\"1\"}",
                     cfg.topic, cfg.topic, ci % cfg.topics);
    else
        n = snprintf(sub, sizeof sub, "{\"op\":\"subscribe\",\"args\":[\"%s\"],\"req_id\":\"1\"}",
                     cfg.topic);
    ws_send_frame(c, 0x1, sub, (size_t)n);
    return hl;
}

static void conn_readable(conn_t *c)
{
    size_t have = c->plen;
    if (have)
        memcpy(scratch, c->pbuf, have);
    ssize_t r = recv(c->fd, scratch + have, SCRATCH_SZ - have, 0);
    g.recvs++;
    if (g_handicap_ns) {
        /* headroom test: burn a fixed amount of CPU per recv */
        int64_t until = now_ns() + g_handicap_ns;
        while (now_ns() < until)
            ;
    }
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        const char *why = r == 0 ? "eof" : strerror(errno);
        if (c->state == ST_HANDSHAKE || c->state == ST_CONNECTING)
            conn_retry(c, why);
        else
            conn_kill(c, why, r == 0 ? 2 : 0);
        return;
    }
    int64_t now = now_ns();
    size_t len = have + (size_t)r, used = 0;
    if (c->state == ST_HANDSHAKE) {
        used = handle_handshake(c, scratch, len);
        if (c->state == ST_HANDSHAKE || c->state == ST_IDLE || c->state == ST_CONNECTING) {
            if (c->state == ST_HANDSHAKE)
                goto keep; /* incomplete */
            return;        /* retried */
        }
    }
    used += ws_consume(c, (uint8_t *)scratch + used, len - used, now);
    if (c->state == ST_DEAD)
        return;
keep:
    c->plen = (uint32_t)(len - used);
    if (c->plen) {
        if (c->plen > c->pcap) {
            c->pcap = c->plen + 256;
            c->pbuf = xrealloc(c->pbuf, c->pcap);
        }
        memcpy(c->pbuf, scratch + used, c->plen);
    }
}

static void conn_event(conn_t *c, uint32_t evs)
{
    if (c->state == ST_DEAD || c->fd < 0)
        return;
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (evs & (EPOLLERR | EPOLLHUP))) {
            conn_retry(c, err ? strerror(err) : "connect failed");
            return;
        }
        send_handshake(c);
        return;
    }
    if (evs & EPOLLOUT) {
        conn_flush(c);
        if (c->state == ST_DEAD)
            return;
    }
    if (evs & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_readable(c);
}

/* ------------------------------------------------------------------ */
/* producer (HTTP publish)                                             */

static void prod_connect(prod_t *p, int i)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("producer socket(): %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* blocking connect with a timeout, then non-blocking */
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0)
        die("producer connect(): %s", strerror(errno));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    p->fd = fd;
    p->busy = 0;
    p->inlen = 0;
    p->outlen = p->outoff = 0;
    p->evmask = EPOLLIN;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_PROD | (uint64_t)i};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl ADD producer: %s", strerror(errno));
}

static void prod_flush(prod_t *p, int i)
{
    while (p->outoff < p->outlen) {
        ssize_t w = send(p->fd, p->out + p->outoff, p->outlen - p->outoff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            die("producer send(): %s", strerror(errno));
        }
        p->outoff += (size_t)w;
    }
    uint32_t want = p->outoff < p->outlen ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    ev_mod(p->fd, &p->evmask, want, TAG_PROD | (uint64_t)i);
}

static void out_reserve(prod_t *p, size_t need)
{
    if (need > p->outcap) {
        p->outcap = need * 2;
        p->out = xrealloc(p->out, p->outcap);
    }
}

/* batch idx carries S = idx*B+1 .. idx*B+B; t_ref is the latency origin (0 = now) */
static void send_batch(int pi, int64_t t_ref)
{
    prod_t *p = &prods[pi];
    int64_t idx = g.nsent;
    ensure_batch_cap(idx + 1);
    size_t per_event = 360 + 2 * strlen(cfg.topic) + strlen(cfg.probe_topic);
    size_t body_cap = 32 + (size_t)cfg.batch * per_event;
    size_t hdr_cap = 512 + strlen(cfg.key) + strlen(cfg.host);
    out_reserve(p, hdr_cap + body_cap);
    /* body first, after room for the header; then header; then move */
    char *body = p->out + hdr_cap;
    size_t bl = 0;
    bl += (size_t)sprintf(body + bl, "{\"events\":[");
    int32_t expect = 0;
    for (int k = 0; k < cfg.batch; k++) {
        long long s = (long long)idx * cfg.batch + k + 1;
        /* the topic, and its market (data.market_addr must match the topic's) */
        char topic[160];
        int tp = topic_of_seq(s);
        if (cfg.mode == MODE_IDLE)
            snprintf(topic, sizeof topic, "%s", cfg.probe_topic);
        else if (tp < 0)
            snprintf(topic, sizeof topic, "%s", cfg.topic);
        else
            snprintf(topic, sizeof topic, "%s-%d", cfg.topic, tp);
        expect += tp < 0 ? cfg.n : small_subs[tp];
        const char *market = strchr(topic, '/');
        market = market ? market + 1 : topic;
        bl += (size_t)sprintf(body + bl,
                              "%s{\"topic\":\"%s\",\"data\":{\"type\":\"trades\",\"market_addr\":\"%s\","
                              "\"seq\":%lld,\"trades\":[{\"id\":\"t%lld\",\"side\":\"buy\","
                              "\"price\":1000000,\"size\":25,\"seq\":%lld,\"timestamp\":1700000000}]}}",
                              k ? "," : "", topic, market, s, s, s);
    }
    bl += (size_t)sprintf(body + bl, "]}");
    char hdr[1024];
    int hl = snprintf(hdr, sizeof hdr,
                      "POST /api/v1/publish HTTP/1.1\r\n"
                      "Host: %s:%d\r\n"
                      "Authorization: Bearer %s\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %zu\r\n"
                      "\r\n",
                      cfg.host, cfg.port, cfg.key, bl);
    if (hl <= 0 || (size_t)hl >= sizeof hdr || (size_t)hl > hdr_cap)
        die("producer key/host too long");
    memmove(p->out + hl, body, bl);
    memcpy(p->out, hdr, (size_t)hl);
    p->outlen = (size_t)hl + bl;
    p->outoff = 0;
    p->busy = 1;
    p->batch = idx;
    int64_t now = now_ns();
    if (t_ref) {
        int64_t lag = now - t_ref;
        if (lag > g.max_send_lag_ns)
            g.max_send_lag_ns = lag;
        if (lag > 1000000)
            g.late_sends++;
    }
    g.send_ns[idx] = t_ref ? t_ref : now;
    g.done_count[idx] = 0;
    g.expect_count[idx] = expect;
    if (idx >= g.measure_from)
        g.expected_measured += (uint64_t)expect;
    g.nsent++;
    prod_flush(p, pi);
}

/* returns 1 if a full response was consumed */
static int prod_parse(prod_t *p)
{
    char *end = memmem(p->in, p->inlen, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t hl = (size_t)(end - p->in) + 4;
    int status = 0;
    if (p->inlen < 12 || sscanf(p->in, "HTTP/1.%*d %d", &status) != 1)
        die("producer: malformed HTTP response: %.*s", (int)(hl > 300 ? 300 : hl), p->in);
    const char *cl = find_header(p->in, hl, "Content-Length");
    const char *te = find_header(p->in, hl, "Transfer-Encoding");
    const char *conn_hdr = find_header(p->in, hl, "Connection");
    size_t total, blen;
    char *body;
    char *dechunked = NULL;
    if (cl) {
        blen = strtoul(cl, NULL, 10);
        total = hl + blen;
        if (p->inlen < total)
            return 0;
        body = p->in + hl;
    } else if (te && strncasecmp(te, "chunked", 7) == 0) {
        /* minimal chunked decoding */
        size_t pos = hl;
        dechunked = xrealloc(NULL, p->inlen + 1);
        blen = 0;
        for (;;) {
            char *le = memmem(p->in + pos, p->inlen - pos, "\r\n", 2);
            if (!le) {
                free(dechunked);
                return 0;
            }
            size_t csz = strtoul(p->in + pos, NULL, 16);
            pos = (size_t)(le - p->in) + 2;
            if (csz == 0) {
                char *tr = memmem(p->in + pos - 2, p->inlen - pos + 2, "\r\n\r\n", 4);
                if (!tr) {
                    free(dechunked);
                    return 0;
                }
                pos = (size_t)(tr - p->in) + 4;
                break;
            }
            if (p->inlen < pos + csz + 2) {
                free(dechunked);
                return 0;
            }
            memcpy(dechunked + blen, p->in + pos, csz);
            blen += csz;
            pos += csz + 2;
        }
        total = pos;
        body = dechunked;
    } else if (status == 204 || status == 304) {
        blen = 0;
        total = hl;
        body = p->in + hl;
    } else {
        die("producer: response without Content-Length: %.*s", (int)(hl > 300 ? 300 : hl), p->in);
        return 0;
    }
    if (status != 200)
        die("publish returned HTTP %d: %.*s", status, (int)(blen > 1000 ? 1000 : blen), body);
    /* check "accepted":B */
    char *a = memmem(body, blen, "\"accepted\"", 10);
    long acc = -1;
    if (a) {
        a += 10;
        while (a < body + blen && (*a == ' ' || *a == ':'))
            a++;
        acc = strtol(a, NULL, 10);
    }
    if (acc != cfg.batch) {
        if (g.accept_mismatch++ < 5)
            fprintf(stderr, "loadgen: publish response not accepted=%d: %.*s\n", cfg.batch,
                    (int)(blen > 300 ? 300 : blen), body);
    }
    free(dechunked);
    memmove(p->in, p->in + total, p->inlen - total);
    p->inlen -= total;
    p->busy = 0;
    g.nacked++;
    if (conn_hdr && strncasecmp(conn_hdr, "close", 5) == 0) {
        /* server wants a new connection */
        epoll_ctl(epfd, EPOLL_CTL_DEL, p->fd, NULL);
        close(p->fd);
        p->fd = -1;
    }
    return 1;
}

static void prod_event(int i, uint32_t evs)
{
    prod_t *p = &prods[i];
    if (p->fd < 0)
        return;
    if (evs & EPOLLOUT)
        prod_flush(p, i);
    if (!(evs & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return;
    if (p->inlen + 65536 > p->incap) {
        p->incap = p->inlen + 65536;
        p->in = xrealloc(p->in, p->incap);
    }
    ssize_t r = recv(p->fd, p->in + p->inlen, p->incap - p->inlen, 0);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        die("producer recv(): %s", strerror(errno));
    }
    if (r == 0) {
        if (p->busy)
            die("producer: server closed the connection with a publish request pending");
        /* idle keep-alive timeout on the server side: reconnect lazily */
        epoll_ctl(epfd, EPOLL_CTL_DEL, p->fd, NULL);
        close(p->fd);
        p->fd = -1;
        return;
    }
    p->inlen += (size_t)r;
    while (p->fd >= 0 && p->busy && prod_parse(p))
        ;
    if (p->fd >= 0 && !p->busy && p->inlen)
        die("producer: unexpected bytes from server: %.*s", (int)(p->inlen > 200 ? 200 : p->inlen),
            p->in);
}

/* index of an idle producer (connecting it if needed), -1 if all busy */
static int prod_free(void)
{
    for (int i = 0; i < cfg.producers; i++) {
        if (prods[i].fd < 0) {
            prod_connect(&prods[i], i);
            return i;
        }
        if (!prods[i].busy)
            return i;
    }
    return -1;
}

static int prod_any_busy(void)
{
    for (int i = 0; i < cfg.producers; i++)
        if (prods[i].fd >= 0 && prods[i].busy)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* idle mode: GET /healthz probe (a fresh connection per request)      */

#define HZ_TIMEOUT_NS (5 * 1000000000LL)

static struct {
    int fd;
    int64_t t0;
    char buf[4096];
    size_t len;
} hz = {.fd = -1};

static void hz_finish(int ok, int64_t now)
{
    if (hz.fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, hz.fd, NULL);
        hard_close(hz.fd);
        hz.fd = -1;
    }
    if (ok) {
        g.hz_ok++;
        int64_t lat = now - hz.t0;
        h_add(&g.hz_hist, lat > 0 ? (uint64_t)(lat / 1000) : 0);
    } else {
        g.hz_failed++;
    }
}

/* start one probe: connect (blocking: loopback completes it in the kernel,
 * before the server accepts), write the request, read it through epoll */
static void hz_start(void)
{
    hz.t0 = now_ns();
    hz.len = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("healthz socket(): %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0) {
        close(fd);
        hz_finish(0, now_ns());
        return;
    }
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET /healthz HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", cfg.host,
                     cfg.port);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        hz_finish(0, now_ns());
        return;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    hz.fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_HZ};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl ADD healthz: %s", strerror(errno));
}

static void hz_event(void)
{
    if (hz.fd < 0)
        return;
    for (;;) {
        if (hz.len >= sizeof hz.buf - 1) {
            hz_finish(0, now_ns());
            return;
        }
        ssize_t r = recv(hz.fd, hz.buf + hz.len, sizeof hz.buf - 1 - hz.len, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            hz_finish(0, now_ns());
            return;
        }
        if (r == 0)
            break;
        hz.len += (size_t)r;
    }
    hz.buf[hz.len] = 0;
    char *end = memmem(hz.buf, hz.len, "\r\n\r\n", 4);
    if (!end)
        return;
    size_t hl = (size_t)(end - hz.buf) + 4;
    const char *cl = find_header(hz.buf, hl, "Content-Length");
    size_t blen = cl ? strtoul(cl, NULL, 10) : 0;
    if (hz.len < hl + blen)
        return;
    hz_finish(strncmp(hz.buf, "HTTP/1.1 200", 12) == 0, now_ns());
}

/* ------------------------------------------------------------------ */
/* event loop                                                          */

static struct epoll_event events[1024];

static void poll_once(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        timeout_ns = 0;
    struct timespec ts = {.tv_sec = timeout_ns / 1000000000LL, .tv_nsec = timeout_ns % 1000000000LL};
    int n = epoll_pwait2(epfd, events, 1024, &ts, NULL);
    g.polls++;
    if (n < 0) {
        if (errno == EINTR)
            return;
        if (errno == ENOSYS) {
            n = epoll_wait(epfd, events, 1024, (int)((timeout_ns + 999999) / 1000000));
            if (n < 0 && errno == EINTR)
                return;
        }
        if (n < 0)
            die("epoll_wait: %s", strerror(errno));
    }
    for (int k = 0; k < n; k++) {
        uint64_t tag = events[k].data.u64;
        if (tag & TAG_PROD)
            prod_event((int)(tag & ~(uint64_t)TAG_PROD), events[k].events);
        else if (tag == TAG_HZ)
            hz_event();
        else
            conn_event(&conns[tag], events[k].events);
    }
    /* Optional coalescing: when only a few sockets were ready, let data pile
     * up for a moment instead of waking up once per frame.  Bounds wake-ups
     * to ~1/coalesce per second at the price of up to that much extra
     * measured latency. */
    if (g_coalesce && n > 0 && n < 64) {
        struct timespec cs = {0, cfg.coalesce_us * 1000L};
        nanosleep(&cs, NULL);
    }
}

/* ------------------------------------------------------------------ */
/* main                                                                */

static void usage(void)
{
    printf(
        "usage: loadgen --port PORT --key KEY [options]\n"
        "  --host H            server address (default 127.0.0.1)\n"
        "  --port P            server port (required)\n"
        "  --key K             producer bearer key (or env STREAMGATE_PRODUCER_KEY)\n"
        "  --n N               subscriber connections (default 100)\n"
        "  --batch B           events per publish request (default 10)\n"
        "  --mode max|rate|idle closed loop (max), open loop at --rate, or idle: hold N\n"
        "                      subscribed connections and probe (default max)\n"
        "  --window W          max mode: batches not yet delivered to all sockets (default 4)\n"
        "  --rate R            rate mode: delivered msgs/s target = events/s * N\n"
        "  --duration D        seconds of sending in the measurement phase (default 5)\n"
        "  --server-pid PID    read RSS and CPU time of this process\n"
        "  --cpu C             pin the load generator to CPU C\n"
        "  --src-addrs K       spread sources over 127.0.0.2..127.0.0.(K+1) (default 8; 0: no bind)\n"
        "  --wave W            max connections in setup at once (default 500)\n"
        "  --producers P       publish connections (default 1; >1 may reorder batches)\n"
        "  --idle S            idle seconds before the RSS sample (default 1)\n"
        "  --drain S           seconds to wait for the tail after sending stops (default 5)\n"
        "  --connect-timeout S (default 120)\n"
        "  --stall S           abort if nothing is delivered for S seconds (default 10)\n"
        "  --coalesce-us U     measurement phase: sleep U us after a poll that found <64\n"
        "                      ready sockets (fewer wake-ups, up to U us added latency; default 0)\n"
        "  --handicap-ns X     measurement phase: busy-wait X ns per recv, to test whether the\n"
        "                      result depends on loadgen's speed (default 0)\n"
        "  --topics K          many markets: each connection also subscribes to T-<i %% K>;\n"
        "                      events go to T or round-robin to T-0..T-(K-1) (default 0: off)\n"
        "  --big-every M       with --topics: every M-th event goes to T, the others to the\n"
        "                      small topics (default 2: alternate; 1: all to T)\n"
        "  --probes P          idle mode: P GET /healthz and P publishes to the probe topic,\n"
        "                      spread over --duration (default 200)\n"
        "  --probe-topic T     idle mode: topic of the one live subscriber (default trade/PROBE)\n"
        "  --path P  --topic T --verbose\n");
}

static double lg_sys; /* kernel part of the measurement-phase loadgen CPU */
static double srv_user_s = -1, srv_sys_s = -1; /* server CPU in the measurement phase */

static void print_result(const char *mode_name, const char *error, double wall_s, double lg_cpu,
                         double srv_cpu, long rss0, long rss1, double connect_s, int drained)
{
    uint64_t lost = g.gaps + g.tail_missing;
    double mps = wall_s > 0 ? (double)g.delivered / wall_s : 0;
    double eps = wall_s > 0 ? (double)((g.nsent - g.measure_from) * cfg.batch) / wall_s : 0;
    double rss_pc = (rss0 >= 0 && rss1 >= 0 && cfg.n > 0) ? (double)(rss1 - rss0) * 1024.0 / cfg.n : -1;
    uint64_t expected = (uint64_t)((g.nsent - g.measure_from) * cfg.batch) * (uint64_t)cfg.n;
    if (cfg.topics > 0)
        expected = g.expected_measured;
    if (cfg.mode == MODE_IDLE)
        expected = (uint64_t)g.probe_sent;

    printf("connections: %d subscribed in %.2f s (%d setup retries)\n", cfg.n, connect_s,
           g.connect_retries);
    if (rss0 >= 0)
        printf("server RSS: %ld kB idle before, %ld kB with %d subscribers -> %.0f bytes/connection\n",
               rss0, rss1, cfg.n, rss_pc);
    printf("published: %" PRId64 " batches x %d events (+1 warm-up batch), %.0f events/s\n",
           g.nsent - g.measure_from, cfg.batch, eps);
    printf("delivered: %" PRIu64 " of %" PRIu64 " expected frames in %.3f s = %.0f msgs/s\n",
           g.delivered, expected, wall_s, mps);
    printf("latency us: p50=%" PRIu64 " p90=%" PRIu64 " p99=%" PRIu64 " p99.9=%" PRIu64
           " max=%" PRIu64 " mean=%.0f\n",
           h_pct(&g.hist, 50), h_pct(&g.hist, 90), h_pct(&g.hist, 99), h_pct(&g.hist, 99.9), g.hist.max,
           g.hist.total ? g.hist.sum / (double)g.hist.total : 0.0);
    printf("integrity: lost=%" PRIu64 " (gaps=%" PRIu64 " tail=%" PRIu64 ") dup=%" PRIu64
           " seq_mismatch=%" PRIu64 " unexpected=%" PRIu64 " closed=%d eof=%d errors=%d\n",
           lost, g.gaps, g.tail_missing, g.dup, g.seq_mismatch, g.unexpected, g.closed, g.eof, g.errs);
    printf("cpu: loadgen %.2f s (%.2f s in kernel; %.0f%% of one core), server %.2f s (%.0f%%)\n", lg_cpu, lg_sys,
           wall_s > 0 ? 100 * lg_cpu / wall_s : 0, srv_cpu, wall_s > 0 && srv_cpu >= 0 ? 100 * srv_cpu / wall_s : -1);
    printf("RESULT n=%d mode=%s batch=%d window=%d rate=%.0f duration=%.3f"
           " delivered=%" PRIu64 " expected=%" PRIu64 " msgs_per_s=%.0f events_per_s=%.0f"
           " p50_us=%" PRIu64 " p90_us=%" PRIu64 " p99_us=%" PRIu64 " p999_us=%" PRIu64 " max_us=%" PRIu64
           " lost=%" PRIu64 " gaps=%" PRIu64 " tail_missing=%" PRIu64 " dup=%" PRIu64
           " seq_mismatch=%" PRIu64 " unexpected=%" PRIu64 " closed=%d eof=%d errors=%d"
           " pings=%" PRIu64 " other_msgs=%" PRIu64 " early_events=%" PRIu64 " accept_mismatch=%" PRIu64
           " late_sends=%" PRIu64 " max_send_lag_us=%" PRId64 " recvs=%" PRIu64 " polls=%" PRIu64
           " coalesce_us=%d handicap_ns=%d loadgen_cpu_s=%.3f loadgen_sys_s=%.3f loadgen_cpu_pct=%.1f server_cpu_s=%.3f server_cpu_pct=%.1f wall_s=%.3f"
           " rss_before_kb=%ld rss_after_kb=%ld rss_per_conn_bytes=%.0f connect_s=%.3f"
           " base_offset=%" PRId64 " batches=%" PRId64 " drained=%d"
           " topics=%d big_every=%d server_user_s=%.3f server_sys_s=%.3f conns_per_s=%.0f"
           " hz_ok=%" PRIu64 " hz_failed=%" PRIu64 " hz_p50_us=%" PRIu64 " hz_p99_us=%" PRIu64
           " hz_max_us=%" PRIu64 " probe_sent=%" PRId64 " probe_rx=%" PRIu64 " error=%s\n",
           cfg.n, mode_name, cfg.batch, cfg.window, cfg.rate, cfg.duration, g.delivered, expected, mps, eps,
           h_pct(&g.hist, 50), h_pct(&g.hist, 90), h_pct(&g.hist, 99), h_pct(&g.hist, 99.9), g.hist.max,
           lost, g.gaps, g.tail_missing, g.dup, g.seq_mismatch, g.unexpected, g.closed, g.eof, g.errs,
           g.pings, g.other_msgs, g.early_events, g.accept_mismatch, g.late_sends, g.max_send_lag_ns / 1000, g.recvs, g.polls, cfg.coalesce_us, cfg.handicap_ns, lg_cpu, lg_sys,
           wall_s > 0 ? 100 * lg_cpu / wall_s : 0, srv_cpu,
           wall_s > 0 && srv_cpu >= 0 ? 100 * srv_cpu / wall_s : -1, wall_s, rss0, rss1, rss_pc, connect_s,
           g.base, g.nsent - g.measure_from, drained, cfg.topics, cfg.big_every, srv_user_s, srv_sys_s,
           connect_s > 0 ? cfg.n / connect_s : 0, g.hz_ok, g.hz_failed, h_pct(&g.hz_hist, 50),
           h_pct(&g.hz_hist, 99), g.hz_hist.max, g.probe_sent, g.probe_rx, error);
    fflush(stdout);
}

/* idle mode, after the N connections are set up and idle: --probes GET
 * /healthz requests and as many publishes to the probe topic (one event
 * each), spread evenly over --duration while the N connections are held;
 * then up to --drain s for outstanding probes. */
static int run_idle_probes(long rss0, long rss1, double connect_s)
{
    const char *error = "none";
    double lg_sys0, lg_sys1, srv_user0, srv_sys0, srv_user1, srv_sys1;
    double lg_cpu0 = cpu_self_s(&lg_sys0);
    double srv_cpu0 = read_proc_cpu_split(cfg.server_pid, &srv_user0, &srv_sys0);
    g.measure_from = 0;
    int64_t t0 = now_ns();
    int64_t interval = (int64_t)(cfg.duration * 1e9 / cfg.probes);
    int64_t next_hz = t0, next_pub = t0 + interval / 2;
    int hz_started = 0;
    int64_t drain_deadline = 0;
    int drained = 0;
    while (!g_stop) {
        int64_t t = now_ns();
        int sending = hz_started < cfg.probes || g.probe_sent < cfg.probes;
        if (hz.fd >= 0 && t - hz.t0 > HZ_TIMEOUT_NS)
            hz_finish(0, t);
        /* a probe due while the previous one of its kind is still out waits
         * for it: the late one is charged from its own start, so the
         * healthz histogram has no coordinated omission within one probe */
        if (hz_started < cfg.probes && t >= next_hz && hz.fd < 0) {
            hz_start();
            hz_started++;
            next_hz += interval;
        }
        if (g.probe_sent < cfg.probes && t >= next_pub) {
            int p = prod_free();
            if (p >= 0) {
                send_batch(p, next_pub);
                g.probe_sent++;
                next_pub += interval;
            }
        }
        if (!sending) {
            if (!drain_deadline)
                drain_deadline = t + (int64_t)(cfg.drain_s * 1e9);
            if (hz.fd < 0 && (int64_t)g.probe_rx >= g.probe_sent && !prod_any_busy()) {
                drained = 1;
                break;
            }
            if (t > drain_deadline)
                break;
        }
        int64_t timeout = 5 * 1000000LL;
        if (sending) {
            int64_t due = next_hz < next_pub ? next_hz : next_pub;
            if (due - t < timeout)
                timeout = due - t;
        }
        poll_once(timeout);
    }
    if (g_stop)
        error = "interrupted";
    else if (!drained)
        error = "drain_timeout";
    if (hz.fd >= 0)
        hz_finish(0, now_ns());
    double wall_s = (now_ns() - t0) / 1e9;
    double lg_cpu = cpu_self_s(&lg_sys1) - lg_cpu0;
    lg_sys = lg_sys1 - lg_sys0;
    double srv_cpu1 = read_proc_cpu_split(cfg.server_pid, &srv_user1, &srv_sys1);
    double srv_cpu = (srv_cpu0 >= 0 && srv_cpu1 >= 0) ? srv_cpu1 - srv_cpu0 : -1;
    if (srv_cpu >= 0) {
        srv_user_s = srv_user1 - srv_user0;
        srv_sys_s = srv_sys1 - srv_sys0;
    }
    if (g.probe_rx < (uint64_t)g.probe_sent)
        g.tail_missing += (uint64_t)g.probe_sent - g.probe_rx;
    printf("idle: %d connections held; healthz probes %" PRIu64 " ok, %" PRIu64 " failed, p50=%" PRIu64
           " us p99=%" PRIu64 " us max=%" PRIu64 " us; live subscriber %" PRIu64 " of %" PRId64
           " received, p50=%" PRIu64 " us p99=%" PRIu64 " us\n",
           cfg.n, g.hz_ok, g.hz_failed, h_pct(&g.hz_hist, 50), h_pct(&g.hz_hist, 99), g.hz_hist.max,
           g.probe_rx, g.probe_sent, h_pct(&g.hist, 50), h_pct(&g.hist, 99));
    print_result("idle", error, wall_s, lg_cpu, srv_cpu, rss0, rss1, connect_s, drained);
    cleanup_sockets();
    if (strcmp(error, "none"))
        return 3;
    return 0; /* failed healthz probes are reported (hz_failed), not fatal */
}

int main(int argc, char **argv)
{
    static struct option opts[] = {
        {"host", 1, 0, 'h'},        {"port", 1, 0, 'p'},       {"key", 1, 0, 'k'},
        {"n", 1, 0, 'n'},           {"batch", 1, 0, 'b'},      {"mode", 1, 0, 'm'},
        {"window", 1, 0, 'w'},      {"rate", 1, 0, 'r'},       {"duration", 1, 0, 'd'},
        {"server-pid", 1, 0, 'P'},  {"cpu", 1, 0, 'c'},        {"src-addrs", 1, 0, 'S'},
        {"wave", 1, 0, 'W'},        {"producers", 1, 0, 'R'},  {"idle", 1, 0, 'I'},
        {"drain", 1, 0, 'D'},       {"connect-timeout", 1, 0, 'C'}, {"stall", 1, 0, 'T'},
        {"coalesce-us", 1, 0, 'Q'},  {"handicap-ns", 1, 0, 'J'},
        {"topics", 1, 0, 'K'},      {"big-every", 1, 0, 'M'},  {"probes", 1, 0, 'B'},
        {"probe-topic", 1, 0, 'O'},
        {"path", 1, 0, 'x'},        {"topic", 1, 0, 't'},      {"verbose", 0, 0, 'v'},
        {"help", 0, 0, 'H'},        {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h': cfg.host = optarg; break;
        case 'p': cfg.port = atoi(optarg); break;
        case 'k': cfg.key = optarg; break;
        case 'n': cfg.n = atoi(optarg); break;
        case 'b': cfg.batch = atoi(optarg); break;
        case 'm':
            if (!strcmp(optarg, "max")) cfg.mode = MODE_MAX;
            else if (!strcmp(optarg, "rate")) cfg.mode = MODE_RATE;
            else if (!strcmp(optarg, "idle")) cfg.mode = MODE_IDLE;
            else die("--mode must be max, rate or idle");
            break;
        case 'w': cfg.window = atoi(optarg); break;
        case 'r': cfg.rate = atof(optarg); break;
        case 'd': cfg.duration = atof(optarg); break;
        case 'P': cfg.server_pid = atoi(optarg); break;
        case 'c': cfg.cpu = atoi(optarg); break;
        case 'S': cfg.src_addrs = atoi(optarg); break;
        case 'W': cfg.wave = atoi(optarg); break;
        case 'R': cfg.producers = atoi(optarg); break;
        case 'I': cfg.idle_s = atof(optarg); break;
        case 'D': cfg.drain_s = atof(optarg); break;
        case 'C': cfg.connect_timeout_s = atof(optarg); break;
        case 'T': cfg.stall_s = atof(optarg); break;
        case 'Q': cfg.coalesce_us = atoi(optarg); break;
        case 'J': cfg.handicap_ns = atoi(optarg); break;
        case 'K': cfg.topics = atoi(optarg); break;
        case 'M': cfg.big_every = atoi(optarg); break;
        case 'B': cfg.probes = atoi(optarg); break;
        case 'O': cfg.probe_topic = optarg; break;
        case 'x': cfg.path = optarg; break;
        case 't': cfg.topic = optarg; break;
        case 'v': cfg.verbose = 1; break;
        case 'H': usage(); return 0;
        default: usage(); return 1;
        }
    }
    if (!cfg.key)
        cfg.key = getenv("STREAMGATE_PRODUCER_KEY");
    if (!cfg.key || !*cfg.key)
        die("--key (or STREAMGATE_PRODUCER_KEY) is required");
    if (cfg.port <= 0 || cfg.port > 65535)
        die("--port is required");
    if (cfg.n < 1 || cfg.n > 1000000 || cfg.batch < 1 || cfg.batch > 100000 || cfg.window < 1 ||
        cfg.wave < 1 || cfg.producers < 1 || cfg.producers > 64 || cfg.duration <= 0 ||
        cfg.duration > 3600 || cfg.src_addrs < 0 || cfg.src_addrs > 250 ||
        cfg.coalesce_us < 0 || cfg.coalesce_us > 100000 || cfg.handicap_ns < 0 ||
        cfg.handicap_ns > 1000000 || cfg.topics < 0 || cfg.topics > cfg.n || cfg.big_every < 1 ||
        cfg.probes < 1 || cfg.probes > 100000)
        die("bad arguments (see --help)");
    if (cfg.mode == MODE_IDLE && (cfg.topics > 0 || cfg.batch != 1))
        die("--mode idle takes --batch 1 and no --topics");
    if (strlen(cfg.probe_topic) > 100 || strchr(cfg.probe_topic, '"') ||
        strchr(cfg.probe_topic, '\\') || !strcmp(cfg.probe_topic, cfg.topic))
        die("--probe-topic must be a plain string of at most 100 characters, not --topic");
    if (cfg.mode == MODE_RATE && cfg.rate <= 0)
        die("--mode rate needs --rate R > 0 (delivered msgs/s)");
    if (strlen(cfg.topic) > 100 || strchr(cfg.topic, '"') || strchr(cfg.topic, '\\'))
        die("--topic must be a plain string of at most 100 characters");

    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0); /* 1 us: keep short sleeps short */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    uint64_t seed;
    fill_random(&seed, sizeof seed);
    rng_state = seed | 1;

    if (cfg.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cfg.cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0)
            die("sched_setaffinity(cpu %d): %s", cfg.cpu, strerror(errno));
    }

    g_nconn = cfg.n + (cfg.mode == MODE_IDLE ? 1 : 0);
    topic_len = strlen(cfg.topic);
    /* file descriptors: N subscribers + producers + slack */
    rlim_t need = (rlim_t)g_nconn + (rlim_t)cfg.producers + 64;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need) {
        struct rlimit want = {need, rl.rlim_max};
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
            want.rlim_max = need; /* needs CAP_SYS_RESOURCE */
            if (setrlimit(RLIMIT_NOFILE, &want) < 0)
                die("need %lu file descriptors but the hard limit is %lu", (unsigned long)need,
                    (unsigned long)rl.rlim_max);
        } else if (setrlimit(RLIMIT_NOFILE, &want) < 0) {
            die("setrlimit(RLIMIT_NOFILE, %lu): %s", (unsigned long)need, strerror(errno));
        }
    }

    memset(&server_addr, 0, sizeof server_addr);
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)cfg.port);
    if (inet_pton(AF_INET, cfg.host, &server_addr.sin_addr) != 1)
        die("--host must be an IPv4 address");
    if ((ntohl(server_addr.sin_addr.s_addr) >> 24) != 127)
        die("--host must be a loopback address (127.0.0.0/8)");

    conns = calloc((size_t)g_nconn, sizeof *conns);
    if (cfg.topics > 0) {
        small_base = malloc((size_t)cfg.topics * sizeof *small_base);
        small_subs = calloc((size_t)cfg.topics, sizeof *small_subs);
        if (!small_base || !small_subs)
            die("out of memory");
        for (int j = 0; j < cfg.topics; j++)
            small_base[j] = -1;
        for (int i = 0; i < cfg.n; i++)
            small_subs[i % cfg.topics]++;
    }
    prods = calloc((size_t)cfg.producers, sizeof *prods);
    scratch = malloc(SCRATCH_SZ);
    if (!conns || !prods || !scratch)
        die("out of memory");
    for (int i = 0; i < g_nconn; i++)
        conns[i].fd = -1;
    for (int i = 0; i < cfg.producers; i++)
        prods[i].fd = -1;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));
    g.base = -1;
    g.measure_from = 1;

    const char *mode_name = cfg.mode == MODE_MAX ? "max" : "rate";
    const char *error = "none";

    /* ---- phase 1: connect + subscribe in waves ---- */
    long rss0 = read_rss_kb(cfg.server_pid);
    int64_t t_conn0 = now_ns();
    int64_t conn_deadline = t_conn0 + (int64_t)(cfg.connect_timeout_s * 1e9);
    int next = 0;
    while (g.ready + g.dead < g_nconn) {
        while (next < g_nconn && g.inflight < cfg.wave) {
            int r = conn_start(next);
            if (r < 0)
                die("connect() for connection %d: %s", next, strerror(-r));
            next++;
        }
        poll_once(10 * 1000000LL);
        if (g_stop)
            die("interrupted during connection setup");
        if (now_ns() > conn_deadline)
            die("connection setup timed out after %.0f s: %d subscribed, %d in progress, %d dead",
                cfg.connect_timeout_s, g.ready, g.inflight, g.dead);
    }
    double connect_s = (now_ns() - t_conn0) / 1e9;
    if (g.dead)
        die("%d connections were lost during setup", g.dead);
    fprintf(stderr, "loadgen: %d connections subscribed in %.2f s\n", g.ready, connect_s);

    /* ---- phase 2: idle, then RSS ---- */
    int64_t t_idle_end = now_ns() + (int64_t)(cfg.idle_s * 1e9);
    for (int64_t t; (t = now_ns()) < t_idle_end && !g_stop;)
        poll_once(t_idle_end - t);
    long rss1 = read_rss_kb(cfg.server_pid);
    if (g.dead)
        die("%d connections were lost while idle", g.dead);
    if (cfg.mode == MODE_IDLE)
        return run_idle_probes(rss0, rss1, connect_s);

    /* ---- phase 3: warm-up batch (establishes the offset base) ---- */
    int pi = prod_free();
    send_batch(pi, 0);
    int64_t warm_deadline = now_ns() + (int64_t)(cfg.warmup_timeout_s * 1e9);
    while ((g.completed < 1 || prod_any_busy()) && !g_stop) {
        int64_t t = now_ns();
        if (t > warm_deadline)
            die("warm-up batch not delivered to all subscribers within %.0f s (acked=%" PRId64
                ", events received=%" PRIu64 ", sockets alive=%d)",
                cfg.warmup_timeout_s, g.nacked, g.events_rx, g.ready);
        poll_once(10 * 1000000LL);
    }
    fprintf(stderr, "loadgen: warm-up delivered, offset base=%" PRId64 "\n", g.base);

    /* ---- phase 4: measurement ---- */
    double lg_sys0, lg_sys1;
    double lg_cpu0 = cpu_self_s(&lg_sys0);
    g.recvs = g.polls = 0;
    g_coalesce = cfg.coalesce_us > 0;
    g_handicap_ns = cfg.handicap_ns;
    double srv_user0, srv_sys0;
    double srv_cpu0 = read_proc_cpu_split(cfg.server_pid, &srv_user0, &srv_sys0);
    int64_t t0 = now_ns();
    int64_t t_stop = t0 + (int64_t)(cfg.duration * 1e9);
    int64_t interval = 0, next_due = t0;
    int64_t queued = 0, queue_head = 0; /* rate mode: due but not yet sent */
    int64_t *queue_t = NULL;
    int64_t queue_cap = 0;
    if (cfg.mode == MODE_RATE) {
        /* deliveries per event: N, or in many-markets mode the average over
         * the mix (one big-topic event of N per M events, the rest N/K) */
        double per_event = cfg.n;
        if (cfg.topics > 0 && cfg.big_every > 1)
            per_event = ((double)cfg.n + (cfg.big_every - 1) * ((double)cfg.n / cfg.topics)) / cfg.big_every;
        double ival = (double)cfg.batch * per_event / cfg.rate * 1e9;
        if (ival < 1000)
            ival = 1000;
        interval = (int64_t)ival;
    }
    g.last_event_ns = t0;
    int64_t stall_ns = (int64_t)(cfg.stall_s * 1e9);
    int sending = 1;
    int64_t drain_deadline = 0;
    int drained = 0;
    while (!g_stop) {
        int64_t t = now_ns();
        if (sending && t >= t_stop) {
            sending = 0;
            drain_deadline = t + (int64_t)(cfg.drain_s * 1e9);
            if (cfg.mode == MODE_RATE && queued - queue_head > 0) {
                fprintf(stderr, "loadgen: %" PRId64 " scheduled batches could not be sent in time\n",
                        queued - queue_head);
            }
        }
        if (sending) {
            if (cfg.mode == MODE_MAX) {
                while (g.nsent - g.completed < cfg.window) {
                    int p = prod_free();
                    if (p < 0)
                        break;
                    send_batch(p, 0);
                }
            } else {
                while (next_due <= t) {
                    if (queued >= queue_cap) {
                        queue_cap = queue_cap ? queue_cap * 2 : 1024;
                        queue_t = xrealloc(queue_t, (size_t)queue_cap * sizeof *queue_t);
                    }
                    queue_t[queued++] = next_due;
                    next_due += interval;
                }
                while (queue_head < queued) {
                    int p = prod_free();
                    if (p < 0)
                        break;
                    send_batch(p, queue_t[queue_head++]);
                }
            }
        } else if (g.completed >= g.nsent && !prod_any_busy()) {
            drained = 1;
            break;
        } else if (t > drain_deadline) {
            break;
        }
        if (g.completed < g.nsent && t - g.last_event_ns > stall_ns) {
            error = "stall";
            fprintf(stderr, "loadgen: no event delivered for %.1f s with %" PRId64
                            " batches outstanding; giving up\n",
                    cfg.stall_s, g.nsent - g.completed);
            break;
        }
        int64_t timeout = 5 * 1000000LL;
        if (sending && cfg.mode == MODE_RATE && next_due - t < timeout)
            timeout = next_due - t;
        if (sending && t_stop - t < timeout)
            timeout = t_stop - t;
        poll_once(timeout);
    }
    if (g_stop)
        error = "interrupted";
    int64_t t_end = now_ns();
    /* throughput span: first send to the moment the last batch reached everyone */
    int64_t span_end = drained ? g.last_complete_ns : t_end;
    if (span_end < t0)
        span_end = t_end;
    double wall_s = (span_end - t0) / 1e9;
    g_coalesce = 0;
    g_handicap_ns = 0;
    double lg_cpu = cpu_self_s(&lg_sys1) - lg_cpu0;
    lg_sys = lg_sys1 - lg_sys0;
    double srv_user1, srv_sys1;
    double srv_cpu1 = read_proc_cpu_split(cfg.server_pid, &srv_user1, &srv_sys1);
    double srv_cpu = (srv_cpu0 >= 0 && srv_cpu1 >= 0) ? srv_cpu1 - srv_cpu0 : -1;
    if (srv_cpu >= 0) {
        srv_user_s = srv_user1 - srv_user0;
        srv_sys_s = srv_sys1 - srv_sys0;
    }

    /* tail check: every live socket must have reached the last published offset */
    int64_t expected_last = g.base + g.nsent * cfg.batch - 1;
    if (cfg.topics > 0) {
        /* per (connection, topic): all the events that topic got */
        int64_t total = g.nsent * cfg.batch, nbig = big_count(total);
        for (int i = 0; i < cfg.n; i++) {
            conn_t *c = &conns[i];
            if (c->state != ST_READY)
                continue;
            int j = i % cfg.topics;
            int64_t have = c->last_off < 0 ? 0 : c->last_off - g.base + 1;
            if (have < nbig)
                g.tail_missing += (uint64_t)(nbig - have);
            int64_t want2 = small_count(total, j);
            int64_t have2 = c->last_off2 < 0 || small_base[j] < 0 ? 0 : c->last_off2 - small_base[j] + 1;
            if (have2 < want2)
                g.tail_missing += (uint64_t)(want2 - have2);
        }
        expected_last = -1; /* the loop below has nothing left to check */
    }
    for (int i = 0; i < cfg.n && expected_last >= 0; i++) {
        conn_t *c = &conns[i];
        if (c->state != ST_READY)
            continue;
        int64_t last = c->last_off < 0 ? g.base - 1 : c->last_off;
        if (last < expected_last)
            g.tail_missing += (uint64_t)(expected_last - last);
    }
    if (!drained && !strcmp(error, "none"))
        error = "drain_timeout";

    print_result(mode_name, error, wall_s, lg_cpu, srv_cpu, rss0, rss1, connect_s, drained);
    cleanup_sockets();
    free(queue_t);
    return strcmp(error, "none") == 0 ? 0 : 3;
}
