/* test_bootcfg.c: the PV bootloader's menu readers (src/vm/bootcfg.c) on
 * grub.cfg and extlinux.conf texts as distributions write them, and on
 * broken ones. */
#include "check.h"
#include "vm/bootcfg.h"

static const char debian_grub[] =
	"# DO NOT EDIT\n"
	"if [ -s $prefix/grubenv ]; then\n  load_env\nfi\n"
	"set default=\"0\"\n"
	"function load_video {\n  insmod all_video\n}\n"
	"menuentry 'Debian GNU/Linux' --class debian $menuentry_id_option "
	"'gnulinux-simple-abcd' {\n"
	"\tload_video\n\tinsmod ext2\n"
	"\tsearch --no-floppy --fs-uuid --set=root abcd\n"
	"\techo\t'Loading Linux 6.1.0-13-amd64 ...'\n"
	"\tlinux\t/boot/vmlinuz-6.1.0-13-amd64 root=UUID=abcd ro  quiet $vt_handoff\n"
	"\tinitrd\t/boot/initrd.img-6.1.0-13-amd64\n"
	"}\n"
	"submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option "
	"'gnulinux-advanced-abcd' {\n"
	"\tmenuentry 'Debian GNU/Linux, with Linux 6.1.0-13-amd64' --id "
	"'gnulinux-6.1.0-13-advanced-abcd' {\n"
	"\t\tlinux /boot/vmlinuz-6.1.0-13-amd64 root=UUID=abcd ro single\n"
	"\t\tinitrd /boot/initrd.img-6.1.0-13-amd64\n\t}\n"
	"\tmenuentry 'Debian GNU/Linux, with Linux 6.1.0-12-amd64' --id "
	"'gnulinux-6.1.0-12-advanced-abcd' {\n"
	"\t\tlinux (hd0,msdos1)/boot/vmlinuz-6.1.0-12-amd64 root=UUID=abcd ro\n"
	"\t\tinitrd /boot/ucode.img /boot/initrd.img-6.1.0-12-amd64\n\t}\n"
	"}\n";

TEST(grub_default_first)
{
	xn_error *err = NULL;
	xn_boot_entry *e = xn_bootcfg_grub(debian_grub, NULL, &err);
	CHECK(e && !err);
	if (!e)
		return;
	CHECK_STR(e->title, "Debian GNU/Linux");
	CHECK_STR(e->kernel, "/boot/vmlinuz-6.1.0-13-amd64");
	CHECK_STR(e->args, "root=UUID=abcd ro quiet");
	CHECK(xn_strv_len(e->initrds) == 1);
	CHECK_STR(e->initrds[0], "/boot/initrd.img-6.1.0-13-amd64");
	xn_boot_entry_free(e);
}

TEST(grub_select_submenu)
{
	xn_boot_entry *e = xn_bootcfg_grub(debian_grub, "1>1", NULL);
	CHECK(e);
	if (e) {
		CHECK_STR(e->kernel, "/boot/vmlinuz-6.1.0-12-amd64");
		CHECK(xn_strv_len(e->initrds) == 2);
		CHECK_STR(e->initrds[1], "/boot/initrd.img-6.1.0-12-amd64");
	}
	xn_boot_entry_free(e);
	e = xn_bootcfg_grub(debian_grub,
			    "gnulinux-advanced-abcd>gnulinux-6.1.0-13-advanced-abcd", NULL);
	CHECK(e && strcmp(e->args, "root=UUID=abcd ro single") == 0);
	xn_boot_entry_free(e);
	e = xn_bootcfg_grub(debian_grub, "Debian GNU/Linux", NULL);
	CHECK(e && strstr(e->args, "quiet"));
	xn_boot_entry_free(e);
}

TEST(grub_set_default)
{
	const char cfg[] = "set default=1; set timeout=5\n"
			   "menuentry \"one\" { linux /a x=1 ; initrd /ia }\n"
			   "menuentry \"two \\\"quoted\\\"\" {\n linux /b x=2\\ y\n}\n";
	xn_boot_entry *e = xn_bootcfg_grub(cfg, NULL, NULL);
	CHECK(e);
	if (e) {
		CHECK_STR(e->title, "two \"quoted\"");
		CHECK_STR(e->kernel, "/b");
		CHECK_STR(e->args, "x=2 y");
		CHECK(e->initrds[0] == NULL);
	}
	xn_boot_entry_free(e);
	/* a default grub cannot resolve here (saved_entry) falls back to 0 */
	e = xn_bootcfg_grub("set default=\"${saved_entry}\"\nmenuentry a { linux /k }\n", NULL,
			    NULL);
	CHECK(e && strcmp(e->kernel, "/k") == 0);
	xn_boot_entry_free(e);
}

TEST(grub_nothing_bootable)
{
	xn_error *err = NULL;
	CHECK(!xn_bootcfg_grub("", NULL, &err));
	CHECK(err != NULL);
	xn_error_free(err);
	err = NULL;
	CHECK(!xn_bootcfg_grub("menuentry x { echo hi }\n", NULL, &err));
	CHECK(err != NULL);
	xn_error_free(err);
	err = NULL;
	CHECK(!xn_bootcfg_grub(debian_grub, "7", &err));
	CHECK(err && strstr(err->message, "'7'"));
	xn_error_free(err);
	/* unterminated quotes, braces and deep nesting end without a crash */
	CHECK(!xn_bootcfg_grub("menuentry 'x { linux /k", NULL, NULL));
	char deep[1024] = "";
	for (int i = 0; i < 60; i++)
		strcat(deep, "submenu s {\n");
	xn_boot_entry *e = xn_bootcfg_grub(deep, NULL, NULL);
	CHECK(!e);
}

static const char extlinux[] =
	"# generated\n"
	"UI menu.c32\n"
	"DEFAULT second\n"
	"TIMEOUT 50\n"
	"LABEL first\n"
	"  MENU LABEL First kernel\n"
	"  KERNEL /boot/vmlinuz-1\n"
	"  INITRD /boot/initrd-1\n"
	"  APPEND root=/dev/vda2 one\n"
	"label second\n"
	"  linux ../vmlinuz-2\n"
	"  append initrd=/boot/i2a,/boot/i2b root=/dev/vda2 two\r\n";

TEST(extlinux_default_label)
{
	xn_boot_entry *e = xn_bootcfg_extlinux(extlinux, NULL, NULL);
	CHECK(e);
	if (e) {
		CHECK_STR(e->kernel, "../vmlinuz-2");
		CHECK_STR(e->args, "root=/dev/vda2 two");
		CHECK(xn_strv_len(e->initrds) == 2);
		CHECK_STR(e->initrds[0], "/boot/i2a");
	}
	xn_boot_entry_free(e);
	e = xn_bootcfg_extlinux(extlinux, "first", NULL);
	CHECK(e && strcmp(e->kernel, "/boot/vmlinuz-1") == 0 &&
	      strcmp(e->initrds[0], "/boot/initrd-1") == 0 && strcmp(e->args, "root=/dev/vda2 one") == 0);
	xn_boot_entry_free(e);
	e = xn_bootcfg_extlinux(extlinux, "1", NULL);
	CHECK(e && strcmp(e->kernel, "../vmlinuz-2") == 0);
	xn_boot_entry_free(e);
}

TEST(extlinux_menu_default_and_bare)
{
	const char cfg[] = "DEFAULT vesamenu.c32\nLABEL a\nKERNEL /a\nLABEL b\nMENU DEFAULT\n"
			   "KERNEL /b\nAPPEND -\n";
	xn_boot_entry *e = xn_bootcfg_extlinux(cfg, NULL, NULL);
	CHECK(e && strcmp(e->kernel, "/b") == 0 && strcmp(e->args, "") == 0);
	xn_boot_entry_free(e);
	e = xn_bootcfg_extlinux("default vmlinuz initrd=initrd.img console=ttyS0\n", NULL, NULL);
	CHECK(e && strcmp(e->kernel, "vmlinuz") == 0 && strcmp(e->args, "console=ttyS0") == 0 &&
	      strcmp(e->initrds[0], "initrd.img") == 0);
	xn_boot_entry_free(e);
	xn_error *err = NULL;
	CHECK(!xn_bootcfg_extlinux("TIMEOUT 1\nLABEL x\nAPPEND y\n", NULL, &err));
	CHECK(err != NULL);
	xn_error_free(err);
	err = NULL;
	CHECK(!xn_bootcfg_extlinux(extlinux, "third", &err));
	CHECK(err != NULL);
	xn_error_free(err);
}

int main(void)
{
	RUN(grub_default_first);
	RUN(grub_select_submenu);
	RUN(grub_set_default);
	RUN(grub_nothing_bootable);
	RUN(extlinux_default_label);
	RUN(extlinux_menu_default_and_bare);
	CHECK_EXIT();
}
