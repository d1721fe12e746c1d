"""Simulators of Smaregi and the channels, for the demo and the tests only.

Each simulator is a small Flask app speaking its platform's real paths, fields, auth
and errors, with a control surface to make things happen (sell at the POS, place an
order, expire a token, go into maintenance). Production code never imports this
package: only the demo runner and the tests do.
"""
