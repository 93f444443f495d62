from segviewer.cli import main

raise SystemExit(main())
