"""weebo-platform: WeeboSI's private cloud. The program lives in stacks/ and components/."""

from stacks.program import main

main()
