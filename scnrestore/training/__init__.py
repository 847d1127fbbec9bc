"""Training SCN models, and measuring them: what makes and checks the
weights the product ships, kept apart from the product itself.

    config       TrainConfig: a run's settings (recorded in RUN/run.json)
    train        the run loop: checkpoints, resume, logs, validation
    sampler      the host sampler (numpy and Pillow patches on a thread)
    devicedata   the device sampler (torch ops on the training device)
    datasources  the --data folders, their shares and fingerprints
    degrade      the degradations training and evaluation apply
    warmstart    starting a run from another run's weights (--init)
    evaluate     scoring a restorer on a folder (``scnrestore eval``)
    standard     the standard-set protocol (Set5, Set14, BSD100, ...)

The product (api, engine, batch, ...) never imports this package; this
package imports the product (evaluation runs the restorer users get).
Nothing is imported here: ``import scnrestore.training`` stays light.
"""
