from streamgate.cli import main

raise SystemExit(main())
