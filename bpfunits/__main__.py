from bpfunits.cli import main

raise SystemExit(main())
