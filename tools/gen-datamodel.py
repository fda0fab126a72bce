#!/usr/bin/env python3
"""Write src/model/datamodel.def from the published XenAPI datamodel (JSON).

The JSON (xapi project's dump of its IDL) gives names, types, qualifiers,
defaults and roles. This script turns it into Xenia's own X-macro
declarations, which the C code includes; it is run by hand when the
datamodel reference changes, and its output is committed.

Usage: tools/gen-datamodel.py ../shared/reference/xenapi-datamodel.json > src/model/datamodel.def
"""
import json
import re
import sys

ROLE_ORDER = ['read-only', 'vm-operator', 'vm-admin', 'vm-power-admin',
              'pool-operator', 'pool-admin']
ROLE_MACRO = ['XN_ROLE_READ_ONLY', 'XN_ROLE_VM_OPERATOR', 'XN_ROLE_VM_ADMIN',
              'XN_ROLE_VM_POWER_ADMIN', 'XN_ROLE_POOL_OPERATOR',
              'XN_ROLE_POOL_ADMIN']
QUAL = {'RW': 'XN_RW', 'RO/runtime': 'XN_RO_RUNTIME',
        'RO/constructor': 'XN_RO_CONSTRUCTOR'}
# Types that are records carried in results, not stored tables.
RECORD_ONLY = {'event', 'auth', 'sr_stat', 'probe_result',
               'vdi_nbd_server_info', 'data_source'}
NO_EVENTS = {'session', 'user'}


def role(roles):
    r = [x for x in roles if x != 'client-cert']
    if not r:
        return 'XN_ROLE_NONE'
    return ROLE_MACRO[min(ROLE_ORDER.index(x) for x in r)]


def cstr(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def json_default(ty, text):
    """The datamodel's OCaml-ish default literal as JSON text."""
    t = text.strip()
    if ty.endswith(' map'):
        if t == '{}':
            return '{}'
        pairs = re.findall(r'"([^"]*)"\s*->\s*"([^"]*)"', t)
        return json.dumps(dict(pairs), separators=(',', ':'))
    if ty.endswith(' set'):
        inner = t.strip('{}').strip()
        if not inner:
            return '[]'
        items = [x.strip() for x in inner.split(';')]
        if ty.startswith('int'):
            return json.dumps([int(x) for x in items])
        return json.dumps([x.strip('"') for x in items])
    if ty.endswith(' ref'):
        return json.dumps('OpaqueRef:NULL')
    if ty == 'string':
        return json.dumps(json.loads(t)) if t.startswith('"') else json.dumps(t)
    if ty == 'int':
        return str(int(t))
    if ty == 'float':
        return repr(float(t.rstrip('.') or '0'))
    if ty == 'bool':
        return t
    return json.dumps(t)  # datetime, enum


def main():
    data = json.load(open(sys.argv[1]))
    out = sys.stdout
    out.write('/* The XenAPI datamodel as Xenia declares it: every class, field,\n'
              ' * enum and explicit message, with XenAPI names, types, qualifiers,\n'
              ' * defaults (as JSON text) and the lowest role allowed.\n'
              ' * Written by tools/gen-datamodel.py from the xapi project\'s\n'
              ' * published datamodel; included by src/model/model.c. */\n\n')
    enums = {}
    for c in data:
        for e in c['enums']:
            enums[e['name']] = e['values']
    for name in sorted(enums):
        out.write('XN_ENUM(%s, %s)\n' % (name, cstr(' '.join(enums[name]))))
    out.write('\n')
    for c in data:
        cls = c['class']
        flags = []
        if cls in RECORD_ONLY:
            flags.append('XN_CLS_RECORD_ONLY')
        if cls in NO_EVENTS:
            flags.append('XN_CLS_NO_EVENTS')
        out.write('XN_CLASS(%s, %s)\n' % (cls, '|'.join(flags) or '0'))
        setters = {m['name']: m for m in c['messages'] if m.get('implicit')}
        for f in c['fields']:
            fname = f['name'].replace('__', '_')
            setter = setters.get('set_' + f['name'].replace('__', '_'))
            dflt = 'NULL'
            if 'default' in f:
                dflt = cstr(json_default(f['type'], f['default']))
            fl = QUAL[f['qualifier']]
            if c['state'] == 'Removed_s':
                pass
            out.write('XN_FIELD(%s, %s, %s, %s, %s, %s)\n' % (
                cls, f['name'], cstr(f['type']), fl, dflt,
                role(setter['roles']) if setter else 'XN_ROLE_NONE'))
        for m in c['messages']:
            implicit = m.get('implicit', False)
            if implicit and m['name'] not in ('create', 'destroy'):
                continue
            params = m['params']
            mflags = []
            if implicit:
                mflags.append('XN_MSG_IMPLICIT')
            if params and params[0][0] == 'session ref' and params[0][1] == 'session_id':
                params = params[1:]
            else:
                mflags.append('XN_MSG_NO_SESSION')
            ps = ''.join('XN_P(%s, %s, %d) ' % (cstr(p[0]), cstr(p[1]),
                                               1 if len(p) > 2 else 0)
                         for p in params)
            out.write('XN_MSG(%s, %s, %s, %s, %s, %s)\n' % (
                cls, m['name'], cstr(m['result']), role(m['roles']),
                '|'.join(mflags) or '0', ps))
        out.write('\n')


if __name__ == '__main__':
    main()
