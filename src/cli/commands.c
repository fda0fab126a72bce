/* commands.c: the command table of `xe`.
 *
 * Hand-written commands are declared below, one line each: name,
 * handler, required and optional parameters, flags, help. The
 * `<cls>-list` and `<cls>-param-*` commands are generated once from the
 * class views of classes.c and the generic operations of cmd_param.c,
 * never written per class. `help` and the parameter checks read the same
 * table. */
#include <string.h>

#include "cli/cli.h"

#define SEL (XE_CMD_FILTERS | XE_CMD_STANDARD)

static const xe_cmd handwritten[] = {
	{"help", xe_cmd_help, "", "all", XE_CMD_NO_CONN | XE_CMD_STANDARD,
	 "Show the commands, or the parameters and description of one command.", NULL},
	{"vm-install", xe_cmd_vm_install, "new-name-label",
	 "template template-uuid template-name-label sr-uuid disk-size new-name-description",
	 XE_CMD_STANDARD,
	 "Install a new VM from a template (name or uuid): clone it, provision its disks on "
	 "sr-uuid (default: the pool's default SR), disk-size= bytes or 10GiB each, and print "
	 "the new VM's uuid.", NULL},
	{"vm-uninstall", xe_cmd_vm_uninstall, "", "vm force multiple", SEL,
	 "Destroy the selected VM(s) and the disks only they use, shutting them down first.", NULL},
	{"vm-destroy", xe_cmd_vm_destroy, "uuid", "", 0,
	 "Destroy the VM record (its disks are kept).", NULL},
	{"vm-start", xe_cmd_vm_lifecycle, "", "vm paused on force multiple", SEL,
	 "Start the selected VM(s); paused=true leaves them paused, on=<host> picks the host.", NULL},
	{"vm-shutdown", xe_cmd_vm_lifecycle, "", "vm force multiple", SEL,
	 "Shut the selected VM(s) down cleanly; --force powers them off.", NULL},
	{"vm-reboot", xe_cmd_vm_lifecycle, "", "vm force multiple", SEL,
	 "Reboot the selected VM(s) cleanly; --force resets them.", NULL},
	{"vm-suspend", xe_cmd_vm_lifecycle, "", "vm multiple", SEL,
	 "Suspend the selected VM(s) to disk.", NULL},
	{"vm-resume", xe_cmd_vm_lifecycle, "", "vm paused force multiple", SEL,
	 "Resume the selected suspended VM(s).", NULL},
	{"vm-pause", xe_cmd_vm_lifecycle, "", "vm multiple", SEL, "Pause the selected VM(s).", NULL},
	{"vm-unpause", xe_cmd_vm_lifecycle, "", "vm multiple", SEL,
	 "Unpause the selected VM(s).", NULL},
	{"vdi-create", xe_cmd_vdi_create, "sr-uuid name-label virtual-size",
	 "type name-description", XE_CMD_STANDARD,
	 "Create an empty thin disk of virtual-size (units: KiB, MiB, GiB, TiB) on an SR; "
	 "prints its uuid.", NULL},
	{"vdi-destroy", xe_cmd_vdi_destroy, "uuid", "", XE_CMD_STANDARD,
	 "Destroy a disk and its image (refused while a running VM uses it).", NULL},
	{"vdi-resize", xe_cmd_vdi_resize, "uuid disk-size", "online", XE_CMD_STANDARD,
	 "Grow a disk to disk-size (units: KiB, MiB, GiB, TiB); a running VM sees it at once.",
	 NULL},
	{"vm-clone", xe_cmd_vm_clone, "uuid new-name-label", "", XE_CMD_STANDARD,
	 "Clone a halted VM: its disks become copy-on-write overlays; prints the new uuid.",
	 NULL},
	{"vdi-import", xe_cmd_vdi_import, "uuid filename", "format progress", XE_CMD_STANDARD,
	 "Write a disk image (format raw, qcow2 or vhd; default raw) from filename (- for "
	 "stdin) into an existing VDI at least as large as the image; --progress shows how "
	 "far it got.", NULL},
	{"vdi-export", xe_cmd_vdi_export, "uuid filename", "format progress", XE_CMD_STANDARD,
	 "Write a VDI's content to filename (- for stdout) as a raw, qcow2 or vhd image "
	 "(default raw); --progress shows how far it got.", NULL},
	{"vm-export", xe_cmd_vm_export, "filename", "vm uuid compress metadata progress",
	 XE_CMD_STANDARD,
	 "Export a halted VM, a template or a snapshot (vm= name or uuid) to filename (- for "
	 "stdout) as an XVA archive, XenServer's format; compress=true (gzip) or zstd; "
	 "--metadata: the description only, without the disks.", NULL},
	{"vm-import", xe_cmd_vm_import, "filename",
	 "sr-uuid preserve metadata progress format name-label", XE_CMD_STANDARD,
	 "Import a VM from an XVA archive (plain, gzip or zstd; - for stdin), its disks on "
	 "sr-uuid (default: the pool's default SR); preserve=true keeps its uuids and MACs; "
	 "--metadata: a VM whose disks are here already. format=ova|raw|qcow2|vhd|vmdk (else "
	 "from the file name's extension, .xva or none: XVA) imports an OVA/OVF package or a "
	 "bare disk image as a new BIOS-booting VM named name-label. Prints the new VM's uuid.",
	 NULL},
	{"p2v", xe_cmd_p2v, "source", "name-label sr-uuid progress", XE_CMD_STANDARD,
	 "Convert a Linux root file system into a new VM: source= a directory, a tarball "
	 "(tar, tar.gz, tar.xz) or ssh://[user@]host (read with tar over ssh). A disk sized to "
	 "fit is made on sr-uuid, fstab and root= point at /dev/vda, and the VM boots the "
	 "guest's own /boot kernel (else the built-in one). The source is only read. Prints the "
	 "new VM's uuid.", NULL},
	{"vbd-create", xe_cmd_vbd_create, "vm-uuid device", "vdi-uuid bootable type mode",
	 XE_CMD_STANDARD,
	 "Attach a disk (or an empty drive) to a VM as device N; prints the VBD's uuid.", NULL},
	{"vbd-destroy", xe_cmd_vbd_destroy, "uuid", "", XE_CMD_STANDARD,
	 "Remove a VBD (the disk stays).", NULL},
	/* networks, VIFs and PIFs (cmd_net.c) */
	{"pif-scan", xe_cmd_pif_scan, "host-uuid", "", XE_CMD_STANDARD,
	 "Record the host's physical interfaces that have no PIF yet, each with a network.",
	 NULL},
	{"pif-plug", xe_cmd_pif_plug, "uuid", "", XE_CMD_STANDARD,
	 "Put a PIF into its network's bridge: the bridge takes the NIC's addresses and routes.",
	 NULL},
	{"pif-unplug", xe_cmd_pif_unplug, "uuid", "", XE_CMD_STANDARD,
	 "Take a PIF out of its network's bridge: its addresses and routes go back to it.",
	 NULL},
	{"vlan-create", xe_cmd_vlan_create, "network-uuid pif-uuid vlan", "", XE_CMD_STANDARD,
	 "Carry a network tagged with VLAN id vlan (1-4094) on a PIF; prints the VLAN's uuid.",
	 NULL},
	{"vlan-destroy", xe_cmd_vlan_destroy, "uuid", "", XE_CMD_STANDARD,
	 "Remove a VLAN (its network must have no running VIF).", NULL},
	{"bond-create", xe_cmd_bond_create, "network-uuid pif-uuids", "mode mac", XE_CMD_STANDARD,
	 "Bond PIFs (comma-separated uuids) for a network, mode active-backup, balance-slb "
	 "(default) or lacp; prints the bond's uuid.", NULL},
	{"bond-destroy", xe_cmd_bond_destroy, "uuid", "", XE_CMD_STANDARD,
	 "Dissolve a bond; its members are free again.", NULL},
	{"pif-reconfigure-ip", xe_cmd_pif_reconfigure_ip, "uuid mode", "IP netmask gateway DNS",
	 XE_CMD_STANDARD,
	 "Set a PIF's IPv4 address: mode=static IP= netmask= [gateway=], or mode=none.", NULL},
	{"pif-forget", xe_cmd_pif_forget, "uuid", "", XE_CMD_STANDARD,
	 "Forget an unplugged PIF's record (pif-scan finds the interface again).", NULL},
	{"network-create", xe_cmd_network_create, "name-label",
	 "name-description MTU bridge other-config:",
	 XE_CMD_STANDARD,
	 "Create a network (a bridge; a private one until a PIF joins it); prints its uuid.",
	 NULL},
	{"network-destroy", xe_cmd_network_destroy, "uuid", "", XE_CMD_STANDARD,
	 "Destroy a network no VIF or PIF uses, and its bridge.", NULL},
	{"vif-create", xe_cmd_vif_create, "vm-uuid network-uuid device", "mac", XE_CMD_STANDARD,
	 "Give a VM a NIC as device N on a network (mac= or a generated one); prints its uuid.",
	 NULL},
	{"vif-destroy", xe_cmd_vif_destroy, "uuid", "", XE_CMD_STANDARD,
	 "Remove a VIF (refused while it is plugged into a running VM).", NULL},
	{"vif-plug", xe_cmd_vif_plug, "uuid", "", XE_CMD_STANDARD,
	 "Hot-plug a VIF into its running VM: a new NIC the guest sees at once.", NULL},
	{"vif-unplug", xe_cmd_vif_unplug, "uuid", "force", XE_CMD_STANDARD,
	 "Hot-unplug a VIF from its running VM; the guest releases the NIC first.", NULL},
	/* disks and CD drives of VMs (cmd_vbd.c) */
	{"vbd-plug", xe_cmd_vbd_plug, "uuid", "", XE_CMD_STANDARD,
	 "Hot-plug a VBD into its running VM (disks only; CD drives take inserts).", NULL},
	{"vbd-unplug", xe_cmd_vbd_unplug, "uuid", "force", XE_CMD_STANDARD,
	 "Hot-unplug a VBD from its running VM; the guest releases the disk first.", NULL},
	{"vbd-insert", xe_cmd_vbd_insert, "uuid vdi-uuid", "", XE_CMD_STANDARD,
	 "Insert a disk (an ISO) into an empty CD drive.", NULL},
	{"vbd-eject", xe_cmd_vbd_eject, "uuid", "", XE_CMD_STANDARD,
	 "Eject the medium of a CD drive.", NULL},
	{"vm-disk-add", xe_cmd_vm_disk_add, "disk-size device", "vm sr-uuid multiple", SEL,
	 "Add a new empty disk of disk-size (units: KiB, MiB, GiB, TiB) as device N on sr-uuid "
	 "(default: the pool's default SR); a running VM gets it at once.", NULL},
	{"vm-disk-remove", xe_cmd_vm_disk_remove, "device", "vm multiple", SEL,
	 "Remove disk device N and destroy it (unplugged first if the VM runs).", NULL},
	{"vm-disk-list", xe_cmd_vm_disk_list, "", "vm vbd-params vdi-params multiple", SEL,
	 "List the disks of the selected VM(s): each VBD and its VDI.", NULL},
	{"vm-cd-add", xe_cmd_vm_cd_add, "cd-name device", "vm multiple", SEL,
	 "Add a CD drive as device N holding the ISO named cd-name (VM halted).", NULL},
	{"vm-cd-insert", xe_cmd_vm_cd_insert, "cd-name", "vm multiple", SEL,
	 "Insert the ISO named cd-name into the VM's empty CD drive.", NULL},
	{"vm-cd-eject", xe_cmd_vm_cd_eject, "", "vm multiple", SEL,
	 "Eject the medium of the VM's CD drive.", NULL},
	{"vm-cd-remove", xe_cmd_vm_cd_remove, "cd-name", "vm multiple", SEL,
	 "Remove the CD drive holding the ISO named cd-name (VM halted).", NULL},
	{"vm-cd-list", xe_cmd_vm_cd_list, "", "vm vbd-params vdi-params multiple", SEL,
	 "List the CD drives of the selected VM(s): each VBD and its VDI.", NULL},
	/* memory of VMs (cmd_memory.c) */
	{"vm-memory-target-set", xe_cmd_vm_memory, "target", "vm multiple", SEL,
	 "Set the memory target (units: MiB, GiB): dynamic-min and dynamic-max both; a "
	 "running VM's balloon moves there at once.", NULL},
	{"vm-memory-dynamic-range-set", xe_cmd_vm_memory, "min max", "vm multiple", SEL,
	 "Set dynamic-min and dynamic-max; a running VM's balloon moves to dynamic-max.", NULL},
	{"vm-memory-static-range-set", xe_cmd_vm_memory, "min max", "vm multiple", SEL,
	 "Set static-min and static-max (VM halted).", NULL},
	{"vm-memory-limits-set", xe_cmd_vm_memory,
	 "static-min static-max dynamic-min dynamic-max", "vm multiple", SEL,
	 "Set all four memory limits (VM halted).", NULL},
	{"vm-memory-set", xe_cmd_vm_memory, "memory", "vm multiple", SEL,
	 "Set static-max, dynamic-max and dynamic-min to memory (VM halted).", NULL},
	/* storage and snapshots (cmd_storage.c) */
	{"sr-create", xe_cmd_sr_create, "name-label type",
	 "content-type shared device-config sm-config physical-size host-uuid name-description",
	 XE_CMD_STANDARD | XE_CMD_ANY,
	 "Create an SR: type=file (device-config:path=), nfs (device-config:server= "
	 "serverpath=) or iso (device-config:location=<dir> or <server>:/<path>); prints its "
	 "uuid.", NULL},
	{"sr-scan", xe_cmd_sr_op, "uuid", "", XE_CMD_STANDARD,
	 "Rescan an SR: new ISO images appear as VDIs, disks whose files are gone are "
	 "forgotten, sizes are refreshed.", "SR.scan"},
	{"sr-update", xe_cmd_sr_op, "uuid", "", 0, "Refresh an SR's sizes.", "SR.update"},
	{"sr-forget", xe_cmd_sr_op, "uuid", "", XE_CMD_STANDARD,
	 "Forget an SR and its disks' records (its files stay); unplug its PBDs first.",
	 "SR.forget"},
	{"sr-destroy", xe_cmd_sr_op, "uuid", "", XE_CMD_STANDARD,
	 "Destroy an SR and every disk on it; unplug its PBDs first.", "SR.destroy"},
	{"pbd-plug", xe_cmd_pbd_op, "uuid", "", XE_CMD_STANDARD,
	 "Attach an SR to its host.", "PBD.plug"},
	{"pbd-unplug", xe_cmd_pbd_op, "uuid", "", XE_CMD_STANDARD,
	 "Detach an SR from its host (refused while a running VM uses one of its disks).",
	 "PBD.unplug"},
	{"vdi-clone", xe_cmd_vdi_fork, "uuid", "new-name-label new-name-description driver-params",
	 XE_CMD_STANDARD | XE_CMD_ANY,
	 "Make a linked copy-on-write clone of a disk (instant); prints its uuid.", "VDI.clone"},
	{"vdi-snapshot", xe_cmd_vdi_fork, "uuid",
	 "new-name-label new-name-description driver-params", XE_CMD_STANDARD | XE_CMD_ANY,
	 "Snapshot a disk (instant, also while a running VM writes it); prints its uuid.",
	 "VDI.snapshot"},
	{"vdi-copy", xe_cmd_vdi_copy, "uuid sr-uuid", "", XE_CMD_STANDARD,
	 "Make a full, independent copy of a disk on an SR; prints its uuid.", NULL},
	{"vm-copy", xe_cmd_vm_copy_op, "new-name-label", "vm sr-uuid new-name-description", SEL,
	 "Copy a halted VM with full copies of its disks (on sr-uuid, default: where they "
	 "are); prints the new uuid.", "VM.copy"},
	{"vm-snapshot", xe_cmd_vm_copy_op, "new-name-label", "vm new-name-description", SEL,
	 "Snapshot a VM's disks (instant, also while it runs); prints the snapshot's uuid.",
	 "VM.snapshot"},
	{"vm-checkpoint", xe_cmd_vm_copy_op, "new-name-label", "vm new-name-description", SEL,
	 "Snapshot a running VM's disks and memory; reverting resumes it where it was; "
	 "prints the snapshot's uuid.", "VM.checkpoint"},
	{"snapshot-revert", xe_cmd_snapshot_revert, "", "snapshot-uuid uuid", XE_CMD_STANDARD,
	 "Revert a VM to a snapshot (its disks; a checkpoint also resumes its memory).", NULL},
	{"snapshot-destroy", xe_cmd_snapshot_destroy, "uuid", "", XE_CMD_STANDARD,
	 "Destroy a snapshot's record (its disks stay: see snapshot-uninstall).", NULL},
	{"snapshot-uninstall", xe_cmd_vm_uninstall, "", "snapshot force multiple", SEL,
	 "Destroy the selected snapshot(s) and the disks only they use.", "snapshot"},
	{"user-add", xe_cmd_user_add, "user-name password", "role", XE_CMD_STANDARD,
	 "Add a local user with a role: read-only (default), vm-operator, vm-admin, "
	 "vm-power-admin, pool-operator or pool-admin; prints the user's subject uuid.", NULL},
	{"user-remove", xe_cmd_user_remove, "user-name", "", XE_CMD_STANDARD,
	 "Remove a local user; their sessions end.", NULL},
	{"user-list", xe_cmd_user_list, "", "minimal", XE_CMD_STANDARD,
	 "List the local users and their roles (root, the local superuser, is built in).", NULL},
	{"user-password-change", xe_cmd_user_password_change, "new", "old user-name",
	 XE_CMD_STANDARD,
	 "Change your own password (old= and new=), or as an administrator another "
	 "user's (user-name= and new=).", NULL},
	/* metrics (cmd_datasource.c, cmd_top.c) */
	{"vm-data-source-list", xe_cmd_ds_list, "", "vm", SEL,
	 "List the data sources of the selected VM: live ones, and those its RRD archives "
	 "(enabled).", "VM"},
	{"vm-data-source-query", xe_cmd_ds_query, "data-source", "vm", SEL,
	 "Print the latest value of one data source of the selected VM.", "VM"},
	{"vm-data-source-record", xe_cmd_ds_record, "data-source", "vm", SEL,
	 "Archive a data source of the selected VM in its RRD from now on.", "VM"},
	{"vm-data-source-forget", xe_cmd_ds_forget, "data-source", "vm", SEL,
	 "Drop the archive of a data source of the selected VM.", "VM"},
	{"host-data-source-list", xe_cmd_ds_list, "", "host uuid", XE_CMD_STANDARD,
	 "List the host's data sources (host= or uuid=; default: this host).", "host"},
	{"host-data-source-query", xe_cmd_ds_query, "data-source", "host uuid", XE_CMD_STANDARD,
	 "Print the latest value of one of the host's data sources.", "host"},
	{"host-data-source-record", xe_cmd_ds_record, "data-source", "host uuid", XE_CMD_STANDARD,
	 "Archive one of the host's data sources in its RRD from now on.", "host"},
	{"host-data-source-forget", xe_cmd_ds_forget, "data-source", "host uuid", XE_CMD_STANDARD,
	 "Drop the archive of one of the host's data sources.", "host"},
	{"top", xe_cmd_top, "", "batch iterations delay sort", XE_CMD_STANDARD,
	 "A live view of the host and its VMs, refreshed every delay= seconds (default 3), "
	 "with xentop's columns; keys sort by a column (n c m v t r s, or the column's first "
	 "letter), q quits. -b (batch=true) prints plain frames, -i N (iterations=N) stops after "
	 "N, -d S (delay=S), sort=COLUMN.", NULL},
	{"console", xe_cmd_console, "", "vm linger scrollback", SEL,
	 "Attach to the text console of the selected VM; Ctrl-] detaches. Without a terminal, "
	 "stdin goes to the console, and output is printed until linger= seconds (default 1) "
	 "after stdin ends.", NULL},
};

/* The generated operations, applied to every class view. */
static const struct {
	const char *suffix;
	xe_handler fn;
	const char *reqd, *optn;
	unsigned flags;
	const char *help; /* %s: the class */
} generic[] = {
	{"list", xe_cmd_list, "", "params", XE_CMD_FILTERS,
	 "List the %s objects. Any field filters (field=value, map:key=value, "
	 "set:contains=value); params=a,b or params=all picks the fields."},
	{"param-list", xe_cmd_param_list, "uuid", "", 0, "Show every field of a %s object."},
	{"param-get", xe_cmd_param_get, "uuid param-name", "param-key", 0,
	 "Show one field of a %s object (param-key: one key of a map field)."},
	{"param-set", xe_cmd_param_set, "uuid", "", XE_CMD_ANY,
	 "Set fields of a %s object: field=value, map-field:key=value."},
	{"param-add", xe_cmd_param_add, "uuid param-name", "param-key", XE_CMD_ANY,
	 "Add to a set field (param-key=value) or a map field (key=value) of a %s object."},
	{"param-remove", xe_cmd_param_remove, "uuid param-name param-key", "", 0,
	 "Remove a key of a map field, or a value of a set field, of a %s object."},
	{"param-clear", xe_cmd_param_clear, "uuid param-name", "", 0,
	 "Empty a field of a %s object."},
};

static xe_cmd *all_cmds;
static size_t nall;

static void build_table(void)
{
	if (all_cmds)
		return;
	size_t nspecs;
	const xe_class_spec *specs = xe_class_specs(&nspecs);
	nall = XN_ARRAY_LEN(handwritten) + nspecs * XN_ARRAY_LEN(generic);
	all_cmds = xn_calloc(nall, sizeof(xe_cmd));
	memcpy(all_cmds, handwritten, sizeof(handwritten));
	xe_cmd *c = all_cmds + XN_ARRAY_LEN(handwritten);
	for (size_t s = 0; s < nspecs; s++) {
		for (size_t g = 0; g < XN_ARRAY_LEN(generic); g++, c++) {
			c->name = xn_asprintf("%s-%s", specs[s].cli, generic[g].suffix);
			c->fn = generic[g].fn;
			c->reqd = generic[g].reqd;
			c->optn = generic[g].optn;
			c->flags = generic[g].flags;
			if (g == 0) /* every -list is in the short help */
				c->flags |= XE_CMD_STANDARD;
			c->help = xn_asprintf(generic[g].help, specs[s].cli);
			c->data = &specs[s];
		}
	}
}

const xe_cmd *xe_cmds(size_t *n)
{
	build_table();
	*n = nall;
	return all_cmds;
}

const xe_cmd *xe_cmd_find(const char *name)
{
	build_table();
	for (size_t i = 0; name && i < nall; i++)
		if (strcmp(all_cmds[i].name, name) == 0)
			return &all_cmds[i];
	return NULL;
}

/* A word ending in ':' ("other-config:") takes every key under it. */
static bool has_prefix_word(const char *words, const char *key)
{
	const char *colon = strchr(key, ':');
	if (!colon)
		return false;
	XN_AUTOFREE char *prefix = xn_strndup(key, (size_t)(colon - key) + 1);
	return xe_words_has(words, prefix);
}

bool xe_cmd_has_param(const xe_cmd *cmd, const char *key)
{
	return xe_words_has(cmd->reqd, key) || xe_words_has(cmd->optn, key) ||
	       has_prefix_word(cmd->optn, key);
}

int xe_cmd_check_params(const xe_cmd *cmd, const xe_args *a, xn_error **err)
{
	const char *p = cmd->reqd;
	while (*p) {
		p += strspn(p, " ");
		size_t len = strcspn(p, " ");
		if (!len)
			break;
		XN_AUTOFREE char *key = xn_strndup(p, len);
		if (!xe_arg(a, key))
			return xe_fail(err, "Required parameter not found: %s", key);
		p += len;
	}
	if (cmd->flags & (XE_CMD_FILTERS | XE_CMD_ANY))
		return 0;
	for (size_t i = 0; i < a->nparams; i++) {
		const char *k = a->params[i].key;
		if (!xe_is_std_param(k) && !xe_cmd_has_param(cmd, k))
			return xe_fail(err, "Unknown parameter for %s: %s", cmd->name, k);
	}
	return 0;
}

/* ---- help ---------------------------------------------------------------- */

static void print_list(FILE *out, const char *label, const char *words, const char *extra)
{
	fprintf(out, "\t%-16s: ", label);
	bool first = true;
	for (const char *p = words ? words : ""; *p;) {
		p += strspn(p, " ");
		size_t len = strcspn(p, " ");
		if (len)
			fprintf(out, "%s%.*s", first ? "" : ", ", (int)len, p);
		first = first && !len;
		p += len;
	}
	if (extra)
		fprintf(out, "%s%s", first ? "" : ", ", extra);
	fputs("\n", out);
}

static void print_cmd_help(FILE *out, const xe_cmd *c)
{
	fprintf(out, "command name            : %s\n", c->name);
	print_list(out, "reqd params", c->reqd, NULL);
	print_list(out, "optional params", c->optn,
		   c->flags & XE_CMD_FILTERS ? "<field filters>" :
		   c->flags & XE_CMD_ANY ? "<field>=<value>" : NULL);
	fprintf(out, "\t%-16s: %s\n", "description", c->help);
}

void xe_print_usage(FILE *out, bool all)
{
	fputs("Usage: xe <command> [-s <server>] [-p <port>] [-u <user> -pw <password> | -pwf <file>]\n"
	      "          [--nossl] [--minimal] [key=value ...] [--flag ...]\n"
	      "Without -s, xe talks to the local xeniad over $XENIA_SOCKET "
	      "(default /run/xenia/xapi.sock).\n\n",
	      out);
	fprintf(out, "%s commands (xe help <command> for details%s):\n", all ? "All" : "Common",
		all ? "" : ", xe help --all for every command");
	size_t n, col = 0;
	const xe_cmd *cmds = xe_cmds(&n);
	for (size_t i = 0; i < n; i++) {
		if (!all && !(cmds[i].flags & XE_CMD_STANDARD))
			continue;
		size_t len = strlen(cmds[i].name);
		if (col && col + len + 2 > 78) {
			fputs(",\n", out);
			col = 0;
		}
		col += (size_t)fprintf(out, "%s%s", col ? ", " : "    ", cmds[i].name);
	}
	fputs("\n", out);
}

int xe_cmd_help(xe_ctx *ctx, xn_error **err)
{
	char **words = ctx->args->words;
	const char *topic = words[0] && words[1] ? words[1] : NULL;
	if (!topic) {
		xe_print_usage(ctx->out, xe_arg_flag(ctx->args, "all"));
		return 0;
	}
	const xe_cmd *c = xe_cmd_find(topic);
	if (!c)
		return xe_fail(err, "Unknown command: %s", topic);
	print_cmd_help(ctx->out, c);
	return 0;
}
