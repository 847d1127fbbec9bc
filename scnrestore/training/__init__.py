"""Training SCN models, and measuring them: what makes and checks the
weights the product ships, kept apart from the product itself.

The product (api, engine, batch, ...) never imports this package; this
package imports the product (evaluation runs the restorer users get).
Nothing is imported here: ``import scnrestore.training`` stays light.
"""
