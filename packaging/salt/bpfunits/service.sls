{#- The kernel runs what the units say: `bpfunits plan --detailed-exitcode` reports a hook whose
    chain differs as a change, and the service is reloaded (SIGHUP: it re-reads its units) when
    the units or the chains changed. The daemon also watches its folder: the reload only makes
    the change immediate and explicit. #}
{%- from "bpfunits/map.jinja" import bpfunits with context %}
include:
  - bpfunits.units
{%- set watched = ["bpfunits-units"] %}

{%- if bpfunits.plan %}
{%-   do watched.append("bpfunits-plan") %}

bpfunits-plan:
  bpfunits.plan:
    - name: {{ bpfunits.units_dir | json }}
    - executable: {{ bpfunits.executable | json }}
    - extra_units_dirs: {{ bpfunits.extra_units_dirs | json }}
    - config: {{ bpfunits.config | json }}
    - plan_args: {{ bpfunits.plan_args | json }}
    - require:
      - bpfunits: bpfunits-units
{%- endif %}

{%- if bpfunits.service %}

bpfunits-service:
  service.running:
    - name: {{ bpfunits.service | json }}
    - enable: true
    - reload: true
    - watch:
{%-   for id in watched %}
      - bpfunits: {{ id }}
{%-   endfor %}
{%- elif bpfunits.reload_command %}

bpfunits-reload:
  cmd.run:
    - name: {{ bpfunits.reload_command | json }}
    - onchanges:
{%-   for id in watched %}
      - bpfunits: {{ id }}
{%-   endfor %}
{%- endif %}
