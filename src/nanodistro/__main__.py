from nanodistro.cli import main

main()
