/*
 * The native ceiling of `deno task bench`: how fast a C program on libmosquitto moves an OTA
 * transfer's traffic through the same broker, so the bench's ratios are taken against a limit
 * that no JavaScript client sets.
 *
 * One publisher and one receiver client, each on its own thread driving its own connection (no
 * libmosquitto network thread), stream messages in the shape of a transfer (docs/protocol.md §7,
 * §8): QoS 0 messages of a given size, each with the Response Topic and Correlation Data a CHUNK
 * carries; the publisher keeps at most `--window` messages ahead of the receiver's cumulative
 * acknowledgement; the receiver publishes a small QoS 1 acknowledgement every `--ack-every`
 * messages and after the last. MQTT 5, TCP_NODELAY on both connections. The bench passes every
 * size and count from the protocol constants (bench/native_ceiling.ts); nothing here knows them.
 *
 * Prints one JSON object on stdout. Throughput is timed on the receiver from the first message
 * after `--warmup` messages to the last; the publisher's CPU (getrusage RUSAGE_THREAD, user +
 * system) is taken over the same messages: from its publish of message `--warmup` to the
 * acknowledgement of the last. Exits 1 with a message on stderr when anything fails.
 *
 * Build: cc -O2 -o pipe pipe.c $(pkg-config --cflags --libs libmosquitto) -pthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Largest message the pipe sends: MAX_CHUNK_BYTES plus headroom for any header. */
#define MAX_MESSAGE_BYTES (1 << 20)
/* Poll period of the client loops; also how often they notice the other side failed. */
#define POLL_MS 200
/* MQTT keep-alive of both clients, seconds. */
#define KEEPALIVE_S 30

struct options {
	const char *host;
	int port;
	const char *data_topic;
	const char *ack_topic;
	const char *client_prefix;
	long message_bytes;
	long messages;
	long window;
	long ack_every;
	long ack_bytes;
	long correlation_bytes;
	long warmup;
	long timeout_s;
};

/* State of one client connection, shared with its callbacks. */
struct client {
	struct mosquitto *mosq;
	const char *role;
	bool connected;
	bool subscribed;
	/* Publisher: highest cumulative acknowledgement. Receiver: messages received. */
	long count;
	/* Receiver: acknowledgements published, and those the broker confirmed (PUBACK). */
	long acks_sent;
	long acks_confirmed;
	mosquitto_property *props;
	unsigned char *ack_payload;
	/* Receiver: timestamps of the first measured and the last message. */
	double t_first;
	double t_last;
	double cpu_seconds;
	double cpu_measured_seconds;
};

static struct options opt;
static atomic_bool failed;
static atomic_bool receiver_ready;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char fail_message[512];
static double deadline;

static void fail(const char *fmt, ...)
{
	pthread_mutex_lock(&fail_lock);
	if (!atomic_load(&failed)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(fail_message, sizeof fail_message, fmt, ap);
		va_end(ap);
		atomic_store(&failed, true);
	}
	pthread_mutex_unlock(&fail_lock);
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds, user + system, of the calling thread. */
static double thread_cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/*
 * One turn of a client's loop: waits up to `timeout_ms` for the socket, reads every packet
 * that is there (libmosquitto's own loop reads one QoS 0 packet per select), writes what is
 * queued, and keeps the connection alive.
 */
static int pump(struct client *c, int timeout_ms)
{
	struct pollfd p = {
		.fd = mosquitto_socket(c->mosq),
		.events = (short)(POLLIN | (mosquitto_want_write(c->mosq) ? POLLOUT : 0)),
	};
	int n = poll(&p, 1, timeout_ms);
	if (n < 0) return errno == EINTR ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ERRNO;
	if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
		for (;;) {
			errno = 0;
			int rc = mosquitto_loop_read(c->mosq, 1);
			if (rc) return rc;
			bool drained = errno == EAGAIN || errno == EWOULDBLOCK;
			if (mosquitto_want_write(c->mosq)) {
				rc = mosquitto_loop_write(c->mosq, 1);
				if (rc) return rc;
			}
			if (drained) break;
		}
	}
	if (mosquitto_want_write(c->mosq)) {
		int rc = mosquitto_loop_write(c->mosq, 1);
		if (rc) return rc;
	}
	return mosquitto_loop_misc(c->mosq);
}

/* Runs the loop until `*flag` is set, the deadline passes or the other side failed. */
static bool pump_until(struct client *c, const bool *flag, const char *what)
{
	while (!*flag) {
		if (atomic_load(&failed)) return false;
		if (now_seconds() > deadline) {
			fail("%s timed out waiting for %s after %ld s", c->role, what, opt.timeout_s);
			return false;
		}
		int rc = pump(c, POLL_MS);
		if (rc) {
			fail("%s lost its connection waiting for %s: %s", c->role, what, mosquitto_strerror(rc));
			return false;
		}
	}
	return true;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags, const mosquitto_property *props)
{
	(void)mosq;
	(void)flags;
	(void)props;
	struct client *c = obj;
	if (rc) fail("%s was refused by the broker: %s", c->role, mosquitto_reason_string(rc));
	else c->connected = true;
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted,
			 const mosquitto_property *props)
{
	(void)mosq;
	(void)mid;
	(void)props;
	struct client *c = obj;
	if (count < 1 || granted[0] > 2) fail("%s subscription was refused (reason %d)", c->role, count ? granted[0] : -1);
	else c->subscribed = true;
}

/* Publisher: an acknowledgement carries the receiver's cumulative count in its first 4 bytes. */
static void on_ack(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m, const mosquitto_property *props)
{
	(void)mosq;
	(void)props;
	struct client *c = obj;
	if (m->payloadlen < 4) {
		fail("publisher got an acknowledgement of %d bytes; expected at least 4", m->payloadlen);
		return;
	}
	long next = (long)get_u32(m->payload);
	if (next > c->count) c->count = next;
}

/* Receiver: checks order, stamps the clock, and acknowledges every `ack_every` messages. */
static void on_data(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m, const mosquitto_property *props)
{
	(void)props;
	struct client *c = obj;
	if (m->payloadlen != opt.message_bytes || get_u32(m->payload) != (uint32_t)c->count) {
		fail("receiver expected message %ld of %ld bytes, got %d bytes numbered %u (QoS 0 lost or reordered a message)",
		     c->count, opt.message_bytes, m->payloadlen, m->payloadlen >= 4 ? get_u32(m->payload) : 0);
		return;
	}
	c->count++;
	if (c->count == opt.warmup + 1) c->t_first = now_seconds();
	if (c->count == opt.messages) c->t_last = now_seconds();
	if (c->count % opt.ack_every == 0 || c->count == opt.messages) {
		put_u32(c->ack_payload, (uint32_t)c->count);
		int rc = mosquitto_publish_v5(mosq, NULL, opt.ack_topic, (int)opt.ack_bytes, c->ack_payload, 1, false, c->props);
		if (rc) fail("receiver cannot publish an acknowledgement: %s", mosquitto_strerror(rc));
		else c->acks_sent++;
	}
}

/* Receiver: the broker confirmed an acknowledgement (QoS 1 PUBACK). */
static void on_ack_confirmed(struct mosquitto *mosq, void *obj, int mid, int reason, const mosquitto_property *props)
{
	(void)mosq;
	(void)mid;
	(void)props;
	struct client *c = obj;
	if (reason >= 0x80) fail("the broker refused an acknowledgement (reason %d)", reason);
	else c->acks_confirmed++;
}

static bool client_start(struct client *c, const char *role, const char *subscribe_to,
			 void (*on_message)(struct mosquitto *, void *, const struct mosquitto_message *, const mosquitto_property *))
{
	char id[128];
	snprintf(id, sizeof id, "%s-%s", opt.client_prefix, role);
	c->role = role;
	c->mosq = mosquitto_new(id, true, c);
	if (!c->mosq) {
		fail("%s cannot create a libmosquitto client (out of memory)", role);
		return false;
	}
	mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_v5_callback_set(c->mosq, on_connect);
	mosquitto_subscribe_v5_callback_set(c->mosq, on_subscribe);
	mosquitto_message_v5_callback_set(c->mosq, on_message);
	int rc = mosquitto_connect_bind_v5(c->mosq, opt.host, opt.port, KEEPALIVE_S, NULL, NULL);
	if (rc) {
		fail("%s cannot connect to %s:%d: %s; check that the broker runs", role, opt.host, opt.port,
		     rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		return false;
	}
	if (!pump_until(c, &c->connected, "CONNACK")) return false;
	rc = mosquitto_subscribe_v5(c->mosq, NULL, subscribe_to, 1, 0, NULL);
	if (rc) {
		fail("%s cannot subscribe to \"%s\": %s", role, subscribe_to, mosquitto_strerror(rc));
		return false;
	}
	return pump_until(c, &c->subscribed, "SUBACK");
}

/*
 * Sends DISCONNECT and closes. Callers first wait until nothing more can arrive (the last
 * PUBACK): closing a socket with unread data sends a reset, and the broker may then discard
 * what it had not yet read from this client, such as the last acknowledgement.
 */
static void client_stop(struct client *c)
{
	if (!c->mosq) return;
	if (c->connected) {
		mosquitto_disconnect(c->mosq);
		for (int i = 0; i < 10 && mosquitto_want_write(c->mosq); i++) mosquitto_loop_write(c->mosq, 1);
	}
	mosquitto_destroy(c->mosq);
	c->mosq = NULL;
}

static mosquitto_property *properties(const char *response_topic, const unsigned char *correlation)
{
	mosquitto_property *props = NULL;
	if (mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, response_topic) ||
	    (opt.correlation_bytes > 0 &&
	     mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, correlation, (uint16_t)opt.correlation_bytes))) {
		fail("cannot build MQTT 5 properties (out of memory)");
	}
	return props;
}

static void *receiver_main(void *arg)
{
	struct client *c = arg;
	unsigned char correlation[255] = {0};
	c->ack_payload = calloc(1, (size_t)opt.ack_bytes);
	c->props = properties(opt.data_topic, correlation);
	bool ok = c->ack_payload && !atomic_load(&failed) && client_start(c, "receiver", opt.data_topic, on_data);
	atomic_store(&receiver_ready, true);
	double cpu0 = thread_cpu_seconds();
	if (ok) mosquitto_publish_v5_callback_set(c->mosq, on_ack_confirmed);
	while (ok) {
		if (c->count == opt.messages && c->acks_confirmed == c->acks_sent) break;
		if (atomic_load(&failed)) break;
		if (now_seconds() > deadline) {
			fail("receiver timed out after %ld of %ld messages (%ld s)", c->count, opt.messages, opt.timeout_s);
			break;
		}
		int rc = pump(c, POLL_MS);
		if (rc) {
			fail("receiver lost its connection after %ld messages: %s", c->count, mosquitto_strerror(rc));
			break;
		}
	}
	c->cpu_seconds = thread_cpu_seconds() - cpu0;
	client_stop(c);
	mosquitto_property_free_all(&c->props);
	free(c->ack_payload);
	return NULL;
}

static void publisher_run(struct client *c)
{
	unsigned char correlation[255] = {0};
	unsigned char *payload = malloc((size_t)opt.message_bytes);
	if (!payload) {
		fail("publisher cannot allocate a %ld-byte message", opt.message_bytes);
		return;
	}
	for (long i = 0; i < opt.message_bytes; i++) payload[i] = (unsigned char)(i * 131 + 7);
	c->props = properties(opt.ack_topic, correlation);
	bool ok = !atomic_load(&failed) && client_start(c, "publisher", opt.ack_topic, on_ack);
	while (ok && !atomic_load(&receiver_ready)) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	double cpu0 = thread_cpu_seconds();
	double cpu_warm = cpu0;
	long next = 0;
	while (ok && !atomic_load(&failed) && c->count < opt.messages) {
		while (next < opt.messages && next - c->count < opt.window) {
			if (next == opt.warmup) cpu_warm = thread_cpu_seconds();
			put_u32(payload, (uint32_t)next);
			int rc = mosquitto_publish_v5(c->mosq, NULL, opt.data_topic, (int)opt.message_bytes, payload, 0, false, c->props);
			if (rc) {
				fail("publisher cannot publish message %ld: %s", next, mosquitto_strerror(rc));
				ok = false;
				break;
			}
			next++;
		}
		if (!ok) break;
		if (now_seconds() > deadline) {
			fail("publisher timed out with %ld of %ld messages acknowledged (%ld s)", c->count, opt.messages, opt.timeout_s);
			break;
		}
		int rc = pump(c, POLL_MS);
		if (rc) {
			fail("publisher lost its connection after %ld messages: %s", next, mosquitto_strerror(rc));
			break;
		}
	}
	double cpu1 = thread_cpu_seconds();
	c->cpu_seconds = cpu1 - cpu0;
	c->cpu_measured_seconds = cpu1 - cpu_warm;
	client_stop(c);
	mosquitto_property_free_all(&c->props);
	free(payload);
}

static void usage(FILE *to)
{
	fprintf(to,
		"Usage: pipe --host H --port P --data-topic T --ack-topic T --message-bytes N --messages N\n"
		"            --window N --ack-every N --ack-bytes N [--correlation-bytes N] [--warmup N]\n"
		"            [--client-prefix S] [--timeout S]\n"
		"Streams QoS 0 messages from a publisher to a receiver through an MQTT 5 broker with a\n"
		"window and cumulative QoS 1 acknowledgements; prints one JSON object.\n");
}

static bool parse_long(const char *name, const char *text, long min, long max, long *out)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || !end || *end || v < min || v > max) {
		fprintf(stderr, "pipe: --%s \"%s\" is not a whole number from %ld to %ld\n", name, text, min, max);
		return false;
	}
	*out = v;
	return true;
}

static bool parse(int argc, char **argv)
{
	static const struct option longs[] = {
		{"host", required_argument, NULL, 'h'},
		{"port", required_argument, NULL, 'p'},
		{"data-topic", required_argument, NULL, 'd'},
		{"ack-topic", required_argument, NULL, 'a'},
		{"client-prefix", required_argument, NULL, 'c'},
		{"message-bytes", required_argument, NULL, 'm'},
		{"messages", required_argument, NULL, 'n'},
		{"window", required_argument, NULL, 'w'},
		{"ack-every", required_argument, NULL, 'e'},
		{"ack-bytes", required_argument, NULL, 'b'},
		{"correlation-bytes", required_argument, NULL, 'r'},
		{"warmup", required_argument, NULL, 'u'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, '?'},
		{NULL, 0, NULL, 0},
	};
	opt = (struct options){.host = "127.0.0.1", .client_prefix = "ota-native-pipe", .ack_bytes = 16, .timeout_s = 60};
	long port = 0;
	int ch;
	while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		bool ok = true;
		switch (ch) {
		case 'h': opt.host = optarg; break;
		case 'p': ok = parse_long("port", optarg, 1, 65535, &port); break;
		case 'd': opt.data_topic = optarg; break;
		case 'a': opt.ack_topic = optarg; break;
		case 'c': opt.client_prefix = optarg; break;
		case 'm': ok = parse_long("message-bytes", optarg, 4, MAX_MESSAGE_BYTES, &opt.message_bytes); break;
		case 'n': ok = parse_long("messages", optarg, 1, 1L << 30, &opt.messages); break;
		case 'w': ok = parse_long("window", optarg, 1, 65535, &opt.window); break;
		case 'e': ok = parse_long("ack-every", optarg, 1, 65535, &opt.ack_every); break;
		case 'b': ok = parse_long("ack-bytes", optarg, 4, 65535, &opt.ack_bytes); break;
		case 'r': ok = parse_long("correlation-bytes", optarg, 0, 255, &opt.correlation_bytes); break;
		case 'u': ok = parse_long("warmup", optarg, 0, 1L << 30, &opt.warmup); break;
		case 't': ok = parse_long("timeout", optarg, 1, 3600, &opt.timeout_s); break;
		default: usage(stderr); return false;
		}
		if (!ok) return false;
	}
	opt.port = (int)port;
	const char *missing = !opt.port ? "--port" : !opt.data_topic ? "--data-topic" : !opt.ack_topic ? "--ack-topic"
		: !opt.message_bytes ? "--message-bytes" : !opt.messages ? "--messages" : !opt.window ? "--window"
		: !opt.ack_every ? "--ack-every" : NULL;
	if (missing) {
		fprintf(stderr, "pipe: %s is required; see pipe --help\n", missing);
		return false;
	}
	if (opt.warmup >= opt.messages) {
		fprintf(stderr, "pipe: --warmup %ld must be below --messages %ld\n", opt.warmup, opt.messages);
		return false;
	}
	if (opt.ack_every > opt.window) {
		fprintf(stderr, "pipe: --ack-every %ld exceeds --window %ld; the publisher would stall\n", opt.ack_every, opt.window);
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	if (!parse(argc, argv)) return 2;
	/* A broker that goes away mid-run must end in an error message, not a silent SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	mosquitto_lib_init();
	deadline = now_seconds() + (double)opt.timeout_s;
	struct client publisher = {0};
	struct client receiver = {0};
	pthread_t thread;
	if (pthread_create(&thread, NULL, receiver_main, &receiver)) {
		fprintf(stderr, "pipe: cannot start the receiver thread\n");
		return 1;
	}
	publisher_run(&publisher);
	pthread_join(thread, NULL);
	mosquitto_lib_cleanup();
	if (atomic_load(&failed)) {
		fprintf(stderr, "pipe: %s\n", fail_message);
		return 1;
	}
	long measured = opt.messages - opt.warmup - 1;
	double seconds = receiver.t_last - receiver.t_first;
	if (measured < 1 || seconds <= 0) {
		fprintf(stderr, "pipe: %ld messages after a warm-up of %ld are too few to time; send more\n", opt.messages, opt.warmup);
		return 1;
	}
	printf("{\"messageBytes\":%ld,\"messages\":%ld,\"warmup\":%ld,\"measuredMessages\":%ld,"
	       "\"seconds\":%.6f,\"messagesPerSecond\":%.1f,\"bytesPerSecond\":%.1f,"
	       "\"publisherCpuSeconds\":%.6f,\"publisherCpuSecondsMeasured\":%.6f,"
	       "\"publisherMeasuredMessages\":%ld,\"receiverCpuSeconds\":%.6f}\n",
	       opt.message_bytes, opt.messages, opt.warmup, measured, seconds, (double)measured / seconds,
	       (double)measured * (double)opt.message_bytes / seconds, publisher.cpu_seconds,
	       publisher.cpu_measured_seconds, opt.messages - opt.warmup, receiver.cpu_seconds);
	return 0;
}
