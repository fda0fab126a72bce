/* Tests of the pure part of vm_guest.c: the guest-metrics maps made from
 * the guest agent's answers (as qemu-ga 7.2 gives them, captured from
 * the Tiny Linux guest, and variations a guest could send: other
 * distributions, upper-case MACs, bridges sharing a NIC's MAC, bad
 * addresses, over-long strings). */
#include <stdlib.h>

#include "check.h"
#include "vm/vm_guest.h"

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	if (!j)
		fprintf(stderr, "  bad test JSON: %s\n", e.text);
	return j;
}

static void check_map(json_t *map, const char *want)
{
	json_t *w = parse(want);
	if (!json_equal(map, w)) {
		char *got = json_dumps(map, JSON_COMPACT | JSON_SORT_KEYS);
		fprintf(stderr, "  got %s\n  want %s\n", got, want);
		free(got);
		CHECK(false);
	}
	json_decref(w);
	json_decref(map);
}

TEST(test_os_version)
{
	json_t *tiny = parse("{\"name\": \"Tiny Linux\", \"kernel-release\": \"6.1.0-56-cloud-amd64\","
			     " \"version\": \"1\", \"pretty-name\": \"Tiny Linux 1\", \"version-id\": \"1\","
			     " \"kernel-version\": \"#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2\","
			     " \"machine\": \"x86_64\", \"id\": \"tiny\"}");
	check_map(xn_guest_os_version(tiny),
		  "{\"name\": \"Tiny Linux 1\", \"distro\": \"tiny\", \"uname\": "
		  "\"6.1.0-56-cloud-amd64\", \"major\": \"1\"}");
	json_decref(tiny);
	json_t *ubuntu = parse("{\"name\": \"Ubuntu\", \"id\": \"ubuntu\", \"version-id\": \"22.04\","
			       " \"kernel-release\": \"5.15.0-91-generic\"}");
	check_map(xn_guest_os_version(ubuntu),
		  "{\"name\": \"Ubuntu\", \"distro\": \"ubuntu\", \"uname\": \"5.15.0-91-generic\","
		  " \"major\": \"22\", \"minor\": \"04\"}");
	json_decref(ubuntu);
	/* nothing usable: an empty map, never a crash */
	json_t *odd = parse("{\"name\": 5, \"version-id\": \".\", \"id\": \"\"}");
	check_map(xn_guest_os_version(odd), "{}");
	json_decref(odd);
	check_map(xn_guest_os_version(NULL), "{}");
}

/* A guest's strings are cut to 255 bytes, never inside a character. */
TEST(test_long_strings_are_cut_on_a_character)
{
	char name[601] = {0};
	for (int i = 0; i < 300; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2); /* é */
	json_t *os = json_pack("{s:s}", "pretty-name", name);
	json_t *v = xn_guest_os_version(os);
	const char *got = json_string_value(json_object_get(v, "name"));
	CHECK(got && strlen(got) == 254 && memcmp(got, name, 254) == 0);
	json_decref(v);
	json_decref(os);
}

TEST(test_drivers_version)
{
	check_map(xn_guest_drivers_version("7.2.22"),
		  "{\"major\": \"7\", \"minor\": \"2\", \"micro\": \"22\", \"application\": \"qemu-ga\"}");
	check_map(xn_guest_drivers_version("8.0"),
		  "{\"major\": \"8\", \"minor\": \"0\", \"micro\": \"-1\", \"application\": \"qemu-ga\"}");
	check_map(xn_guest_drivers_version("v1"),
		  "{\"micro\": \"-1\", \"application\": \"qemu-ga\"}");
	check_map(xn_guest_drivers_version(NULL),
		  "{\"micro\": \"-1\", \"application\": \"qemu-ga\"}");
}

TEST(test_networks_by_mac)
{
	json_t *macs = parse("{\"02:16:3e:00:00:01\": \"0\", \"02:16:3e:00:00:02\": \"3\"}");
	json_t *ifaces = parse(
		"[{\"name\": \"lo\", \"hardware-address\": \"00:00:00:00:00:00\", \"ip-addresses\":"
		"  [{\"ip-address-type\": \"ipv4\", \"ip-address\": \"127.0.0.1\", \"prefix\": 8}]},"
		" {\"name\": \"eth0\", \"hardware-address\": \"02:16:3E:00:00:01\", \"ip-addresses\":"
		"  [{\"ip-address-type\": \"ipv4\", \"ip-address\": \"10.0.0.5\", \"prefix\": 24},"
		"   {\"ip-address-type\": \"ipv6\", \"ip-address\": \"fe80::16:3eff:fe00:1\", \"prefix\": 64},"
		"   {\"ip-address-type\": \"ipv4\", \"ip-address\": \"999.0.0.1\", \"prefix\": 24},"
		"   {\"ip-address-type\": \"ipx\", \"ip-address\": \"10.0.0.9\"},"
		"   {\"ip-address-type\": \"ipv4\", \"ip-address\": \"10.0.0.6\", \"prefix\": 24}]},"
		" {\"name\": \"br0\", \"hardware-address\": \"02:16:3e:00:00:01\", \"ip-addresses\":"
		"  [{\"ip-address-type\": \"ipv4\", \"ip-address\": \"192.168.1.2\"}]},"
		" {\"name\": \"eth1\", \"hardware-address\": \"02:16:3e:00:00:02\"},"
		" {\"name\": \"eth2\", \"hardware-address\": \"02:16:3e:00:00:09\", \"ip-addresses\":"
		"  [{\"ip-address-type\": \"ipv4\", \"ip-address\": \"10.9.9.9\"}]},"
		" {\"name\": \"junk\", \"hardware-address\": 7, \"ip-addresses\": \"no\"}]");
	check_map(xn_guest_networks(ifaces, macs),
		  "{\"0/ip\": \"10.0.0.5\", \"0/ipv4/0\": \"10.0.0.5\", \"0/ipv4/1\": \"10.0.0.6\","
		  " \"0/ipv4/2\": \"192.168.1.2\", \"0/ipv6/0\": \"fe80::16:3eff:fe00:1\"}");
	/* an answer that is not a list, or no VIFs: nothing */
	check_map(xn_guest_networks(json_object_get(macs, "x"), macs), "{}");
	json_t *none = json_object();
	check_map(xn_guest_networks(ifaces, none), "{}");
	json_decref(none);
	json_decref(ifaces);
	json_decref(macs);
}

TEST(test_networks_are_bounded)
{
	json_t *macs = parse("{\"02:00:00:00:00:01\": \"0\"}");
	json_t *addrs = json_array();
	for (int i = 0; i < 100; i++)
		json_array_append_new(addrs, json_pack("{s:s, s:o}", "ip-address-type", "ipv4",
						       "ip-address", json_sprintf("10.1.0.%d", i)));
	json_t *ifaces = json_pack("[{s:s, s:o}]", "hardware-address", "02:00:00:00:00:01",
				   "ip-addresses", addrs);
	json_t *nets = xn_guest_networks(ifaces, macs);
	CHECK(json_object_size(nets) == 33); /* 0/ip and 32 of 0/ipv4/<n> */
	CHECK(json_object_get(nets, "0/ipv4/31") && !json_object_get(nets, "0/ipv4/32"));
	json_decref(nets);
	json_decref(ifaces);
	json_decref(macs);
}

TEST(test_memory)
{
	check_map(xn_guest_memory("MemTotal:         222608 kB\nMemFree:          186216 kB\n"
				  "MemAvailable:     195048 kB\nBuffers:             280 kB\n"),
		  "{\"total\": \"222608\", \"free\": \"195048\"}");
	check_map(xn_guest_memory("MemTotal: 1000 kB\nMemFree: 600 kB\n"),
		  "{\"total\": \"1000\", \"free\": \"600\"}");
	check_map(xn_guest_memory("nonsense\n\n"), "{}");
	check_map(xn_guest_memory(""), "{}");
	check_map(xn_guest_memory(NULL), "{}");
}

int main(void)
{
	RUN(test_os_version);
	RUN(test_long_strings_are_cut_on_a_character);
	RUN(test_drivers_version);
	RUN(test_networks_by_mac);
	RUN(test_networks_are_bounded);
	RUN(test_memory);
	CHECK_EXIT();
}
