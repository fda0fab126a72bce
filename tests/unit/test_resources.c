/* Unit tests of resource control's pure parts: VCPUs_params parsing
 * (vm_resources.c), the weight and cap mapping and the mountinfo reading
 * (host/cgroup.c), and finding vCPU threads by name (qemu_proc.c, on
 * threads of this test named as QEMU names its vCPUs). */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "engine/qemu_proc.h"
#include "host/cgroup.h"
#include "vm/vm_resources.h"

static cpu_set_t cpus(int n)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	for (int i = 0; i < n; i++)
		CPU_SET(i, &s);
	return s;
}

static bool mask_ok(const char *text, int host_n, cpu_set_t *out)
{
	cpu_set_t host = cpus(host_n);
	xn_error *err = NULL;
	int rc = xn_cpu_mask_parse(text, &host, out, &err);
	if (rc < 0) {
		CHECK(err && strcmp(err->code, "INVALID_VALUE") == 0);
		CHECK_STR(err->params[0], "VCPUs_params:mask");
		CHECK_STR(err->params[1], text);
	}
	xn_error_free(err);
	return rc == 0;
}

TEST(test_mask)
{
	cpu_set_t m;
	CHECK(mask_ok("0,1", 2, &m) && CPU_COUNT(&m) == 2 && CPU_ISSET(1, &m));
	CHECK(mask_ok("3", 4, &m) && CPU_COUNT(&m) == 1 && CPU_ISSET(3, &m));
	CHECK(mask_ok("1,1", 2, &m) && CPU_COUNT(&m) == 1);
	CHECK(mask_ok("", 2, &m) && CPU_COUNT(&m) == 0);
	CHECK(!mask_ok("2", 2, &m));        /* the host has no CPU 2 */
	CHECK(!mask_ok("0,,1", 2, &m));
	CHECK(!mask_ok(",0", 2, &m));
	CHECK(!mask_ok("0,", 2, &m));
	CHECK(!mask_ok("-1", 2, &m));
	CHECK(!mask_ok("0-1", 2, &m));      /* xapi's format has no ranges */
	CHECK(!mask_ok(" 0", 2, &m));
	CHECK(!mask_ok("x", 2, &m));
	CHECK(!mask_ok("99999999999", 2, &m));
}

/* Parse {key: value} for a VM of vcpus vCPUs on a 2-CPU host. */
static int parse1(const char *key, const char *value, long vcpus, xn_vcpu_params *p)
{
	cpu_set_t host = cpus(2);
	json_t *m = json_pack("{ss}", key, value);
	xn_error *err = NULL;
	int rc = xn_vcpu_params_parse(m, vcpus, &host, p, &err);
	if (rc < 0) {
		XN_AUTOFREE char *field = xn_asprintf("VCPUs_params:%s", key);
		CHECK_STR(err->code, "INVALID_VALUE");
		CHECK_STR(err->params[0], field);
		CHECK_STR(err->params[1], value);
	}
	xn_error_free(err);
	json_decref(m);
	return rc;
}

TEST(test_vcpu_params)
{
	xn_vcpu_params p;
	cpu_set_t host = cpus(2);
	CHECK(xn_vcpu_params_parse(NULL, 1, &host, &p, NULL) == 0);
	CHECK(p.weight == 256 && p.cap == 0 && !p.pinned);
	CHECK(parse1("weight", "1", 1, &p) == 0 && p.weight == 1);
	CHECK(parse1("weight", "65535", 1, &p) == 0 && p.weight == 65535);
	CHECK(parse1("weight", "0", 1, &p) < 0);
	CHECK(parse1("weight", "65536", 1, &p) < 0);
	CHECK(parse1("weight", "+5", 1, &p) < 0);
	CHECK(parse1("weight", "", 1, &p) < 0);
	CHECK(parse1("cap", "0", 1, &p) == 0 && p.cap == 0);
	CHECK(parse1("cap", "100", 1, &p) == 0 && p.cap == 100);
	CHECK(parse1("cap", "101", 1, &p) < 0);
	CHECK(parse1("cap", "400", 4, &p) == 0 && p.cap == 400);
	CHECK(parse1("cap", "401", 4, &p) < 0);
	CHECK(parse1("cap", "12.5", 1, &p) < 0);
	CHECK(parse1("mask", "1", 1, &p) == 0 && p.pinned && CPU_ISSET(1, &p.mask));
	CHECK(parse1("mask", "", 1, &p) == 0 && !p.pinned);
	CHECK(parse1("mask", "5", 1, &p) < 0);
	/* other keys are someone else's */
	CHECK(parse1("credit", "lots", 1, &p) == 0 && p.weight == 256);
}

TEST(test_mapping)
{
	CHECK(xn_cgroup_v1_shares(256) == 1024);
	CHECK(xn_cgroup_v1_shares(512) == 2048);
	CHECK(xn_cgroup_v1_shares(1) == 4);
	CHECK(xn_cgroup_v1_shares(65535) == 262140);  /* within v1's 262144 */
	CHECK(xn_cgroup_v2_weight(256) == 100);
	CHECK(xn_cgroup_v2_weight(512) == 200);
	CHECK(xn_cgroup_v2_weight(128) == 50);
	CHECK(xn_cgroup_v2_weight(1) == 1);
	CHECK(xn_cgroup_v2_weight(65535) == 10000);   /* v2's ceiling */
	CHECK(xn_cgroup_quota_us(0, 100000) == -1);
	CHECK(xn_cgroup_quota_us(50, 100000) == 50000);
	CHECK(xn_cgroup_quota_us(250, 100000) == 250000);
	CHECK(xn_cgroup_quota_us(1, 100000) == 1000);  /* the kernel's minimum */
}

TEST(test_mounts)
{
	char *v1, *v2;
	/* this kind of host: v1 hierarchies, a cgroup2 with hugetlb only */
	xn_cgroup_mounts("31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
			 "32 31 0:29 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n"
			 "33 31 0:30 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
			 "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
			 &v1, &v2);
	CHECK_STR(v1, "/sys/fs/cgroup/cpu");
	CHECK_STR(v2, "/sys/fs/cgroup/unified");
	free(v1);
	free(v2);
	/* cpu and cpuacct together, optional fields, an escaped space */
	xn_cgroup_mounts("25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup "
			 "cgroup rw,cpu,cpuacct\n"
			 "26 24 0:23 / /sys/fs/cgroup/cpuacct\\040x rw shared:10 - cgroup cgroup "
			 "rw,cpuacct\n",
			 &v1, &v2);
	CHECK_STR(v1, "/sys/fs/cgroup/cpu,cpuacct");
	CHECK(v2 == NULL);
	free(v1);
	/* a systemd host: cgroup2 only */
	xn_cgroup_mounts("30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 "
			 "rw,nsdelegate,memory_recursiveprot\n",
			 &v1, &v2);
	CHECK(v1 == NULL);
	CHECK_STR(v2, "/sys/fs/cgroup");
	free(v2);
	xn_cgroup_mounts("garbage\n\n - \n", &v1, &v2);
	CHECK(v1 == NULL && v2 == NULL);
}

TEST(test_vcpu_index)
{
	CHECK(xn_qemu_vcpu_index("CPU 0/TCG\n") == 0);
	CHECK(xn_qemu_vcpu_index("CPU 12/KVM") == 12);
	CHECK(xn_qemu_vcpu_index("CPU 0/TCGX") == -1);
	CHECK(xn_qemu_vcpu_index("CPU /TCG") == -1);
	CHECK(xn_qemu_vcpu_index("qemu-system-x86\n") == -1);
	CHECK(xn_qemu_vcpu_index("IO mon_iothread") == -1);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t named = PTHREAD_COND_INITIALIZER, stop = PTHREAD_COND_INITIALIZER;
static int nnamed;
static bool stopping;

static void *vcpu_thread(void *arg)
{
	pthread_setname_np(pthread_self(), arg);
	pthread_mutex_lock(&lock);
	nnamed++;
	pthread_cond_broadcast(&named);
	while (!stopping)
		pthread_cond_wait(&stop, &lock);
	pthread_mutex_unlock(&lock);
	return NULL;
}

TEST(test_vcpu_tids)
{
	pid_t tids[4];
	CHECK(xn_qemu_vcpu_tids(getpid(), tids, 4) == 0);
	pthread_t t[2];
	pthread_create(&t[0], NULL, vcpu_thread, "CPU 1/TCG");
	pthread_create(&t[1], NULL, vcpu_thread, "CPU 0/TCG");
	pthread_mutex_lock(&lock);
	while (nnamed < 2)
		pthread_cond_wait(&named, &lock);
	pthread_mutex_unlock(&lock);
	CHECK(xn_qemu_vcpu_tids(getpid(), tids, 4) == 2);
	CHECK(tids[0] > 0 && tids[1] > 0 && tids[0] != tids[1] && tids[0] != getpid());
	CHECK(tids[2] == 0);
	CHECK(xn_qemu_vcpu_tids(getpid(), tids, 1) == 1);  /* bounded by max */
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_broadcast(&stop);
	pthread_mutex_unlock(&lock);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	CHECK(xn_qemu_vcpu_tids(999999999, tids, 4) == -1);
}

int main(void)
{
	RUN(test_mask);
	RUN(test_vcpu_params);
	RUN(test_mapping);
	RUN(test_mounts);
	RUN(test_vcpu_index);
	RUN(test_vcpu_tids);
	CHECK_EXIT();
}
