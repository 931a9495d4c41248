from funnelstream.cli import main

main()
