/* nfq-delay: hold every packet of one NFQUEUE for a fixed time, then accept it.
 *
 *   nfq-delay QUEUE DELAY_US
 *
 * The benchmarks' network delay (tests/benchmarks/netns.py): an iptables rule in a
 * private network namespace sends each TCP packet leaving loopback to QUEUE; this
 * program accepts it DELAY_US later, so every packet pays the delay in the kernel path,
 * whatever the client. The kernel numbers a queue's packets in order and the delay is
 * constant, so packets are released in arrival order with one batch verdict (accept
 * every id up to N) per wake-up. Only metadata is copied to user space. It runs at
 * real-time priority (SCHED_FIFO) so that a loaded machine does not stretch the delay. Prints
 * "ready" once the queue is bound; on SIGTERM/SIGINT prints its counts and exits.
 * Build: gcc -O2 -o nfq-delay nfq_delay.c -lnetfilter_queue
 * (apt-get install libnetfilter-queue-dev).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>

#define RING (1u << 20)

static uint32_t ids[RING];
static uint64_t due[RING];
static uint64_t head, tail, delay_ns, queued, overflow;
static volatile sig_atomic_t stop;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa,
                     void *data) {
    (void)msg;
    (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (ph == NULL) return 0;
    uint32_t id = ntohl(ph->packet_id);
    if (tail - head >= RING) { /* cannot hold it: let it through now */
        overflow++;
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    }
    ids[tail % RING] = id;
    due[tail % RING] = now_ns() + delay_ns;
    tail++;
    queued++;
    return 0;
}

static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: nfq-delay QUEUE DELAY_US\n");
        return 2;
    }
    int queue = atoi(argv[1]);
    delay_ns = (uint64_t)strtoull(argv[2], NULL, 10) * 1000u;
    prctl(PR_SET_TIMERSLACK, 1UL);
    /* Real-time priority: on a busy machine a normal process is woken late, and every
     * packet would be held for the delay plus the scheduler's backlog. */
    struct sched_param sp = {.sched_priority = 20};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) perror("nfq-delay: SCHED_FIFO (continuing)");
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    struct nfq_handle *h = nfq_open();
    if (h == NULL) { perror("nfq_open"); return 1; }
    struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)queue, &on_packet, NULL);
    if (qh == NULL) { perror("nfq_create_queue"); return 1; }
    if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0) { perror("nfq_set_mode"); return 1; }
    nfq_set_queue_maxlen(qh, 1u << 17);
    nfnl_rcvbufsiz(nfq_nfnlh(h), 64u << 20);
    int fd = nfq_fd(h);
    static char buf[1 << 16];
    printf("ready\n");
    fflush(stdout);

    while (!stop) {
        struct timespec ts, *tsp = NULL;
        if (head < tail) {
            uint64_t t = now_ns(), d = due[head % RING];
            uint64_t wait = d > t ? d - t : 0;
            ts.tv_sec = (time_t)(wait / 1000000000u);
            ts.tv_nsec = (long)(wait % 1000000000u);
            tsp = &ts;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int n = ppoll(&pfd, 1, tsp, NULL);
        if (n < 0 && errno != EINTR) { perror("ppoll"); break; }
        if (n > 0 && (pfd.revents & POLLIN)) {
            for (;;) {
                ssize_t len = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (len < 0) {
                    if (errno == ENOBUFS) { overflow++; continue; }
                    break;
                }
                nfq_handle_packet(h, buf, (int)len);
            }
        }
        uint64_t t = now_ns();
        uint64_t last = tail;
        while (head < tail && due[head % RING] <= t) last = head++;
        if (last != tail) nfq_set_verdict_batch(qh, ids[last % RING], NF_ACCEPT);
    }
    /* let whatever is still held through before leaving */
    if (head < tail) nfq_set_verdict_batch(qh, ids[(tail - 1) % RING], NF_ACCEPT);
    fprintf(stderr, "nfq-delay: %llu packets held, %llu overflows\n",
            (unsigned long long)queued, (unsigned long long)overflow);
    nfq_destroy_queue(qh);
    nfq_close(h);
    return 0;
}
