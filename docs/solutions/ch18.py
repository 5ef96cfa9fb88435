"""Chapter 18 — transfer, distillation, compression: reference solutions."""
import tinygrad_cv.functional as F


def distillation_loss(student_logits, teacher_logits, target, T, alpha):
    """α T² KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 - α) CE(z_s, y); the teacher detached."""
    q = (teacher_logits.detach() / T).softmax(1)
    log_p = (student_logits / T).log_softmax(1)
    kl = (q * (q.log() - log_p)).sum() / student_logits.shape[0]     # summed over classes, mean over the batch
    return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(student_logits, target)
