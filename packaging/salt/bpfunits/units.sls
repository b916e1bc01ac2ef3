{#- Render the units, masks and drop-ins of the pillar, then let the bpfunits.units state stage
    them, verify the whole staged set (ordering needs every unit at once) and only then install
    them into units_dir, removing what is no longer listed: a broken set never reaches the live
    folder. With test=True it reports each file's diff and the chains that would change. #}
{%- from "bpfunits/map.jinja" import bpfunits with context %}
{%- import "bpfunits/unitfile.jinja" as unitfile with context %}
{%- set files = [] %}
{%- for unit in bpfunits.units %}
{%-   if unit.get("format", "ini") == "yaml" %}
{%-     do files.append([unit.name ~ ".yaml", unitfile.yaml(unit) | string]) %}
{%-   else %}
{%-     do files.append([unit.name ~ ".unit", unitfile.ini(unit) | string]) %}
{%-   endif %}
{%- endfor %}
{%- for name in bpfunits.masks %}
{%-   do files.append([name ~ ".unit", ""]) %}
{%- endfor %}
{%- for dropin in bpfunits.dropins %}
{%-   do files.append([dropin.unit ~ ".d/" ~ dropin.name ~ ".conf", unitfile.ini(dropin, dropin=true) | string]) %}
{%- endfor %}

bpfunits-units:
  bpfunits.units:
    - name: {{ bpfunits.units_dir | json }}
    - files: {{ files | json }}
    - purge: {{ bpfunits.purge | json }}
    - executable: {{ bpfunits.executable | json }}
    - extra_units_dirs: {{ bpfunits.extra_units_dirs | json }}
    - config: {{ bpfunits.config | json }}
    - plan: {{ bpfunits.plan | json }}
    - plan_args: {{ bpfunits.plan_args | json }}
